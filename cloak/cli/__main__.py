"""``python -m cloak.cli``: the ``cloak`` command."""

from cloak.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()

"""The options protect and enroll share (:mod:`cloak.cli.options`): the --mode help text."""

from __future__ import annotations

from cloak.cli.options import MODE_HELP


def test_mode_help_matches_presets() -> None:
    """--mode's help states each preset's surrogates and steps as cloak.opom.MODES has them."""
    from cloak.opom import MODES

    text = " ".join(MODE_HELP.split())
    for name, mode in MODES.items():
        part = text.split(f"{name}: ", 1)[1].split(" steps", 1)[0]
        assert part.endswith(f"; {mode.config.steps}"), (name, part)
        assert part.split(";")[0].replace("surrogates ", "") == ", ".join(mode.surrogates)


def test_precision_choices_are_the_optimisers():
    """--precision offers exactly the number formats OpomConfig accepts."""
    from cloak.cli.options import PRECISION_CHOICES
    from cloak.opom import PRECISIONS

    assert PRECISION_CHOICES == PRECISIONS

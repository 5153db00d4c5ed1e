"""Writing benchmark results: a JSON file and a named section of a markdown report.

Each benchmark owns one section of ``docs/BENCHMARKS.md``, delimited by HTML comments, so
benchmarks can be re-run independently without clobbering each other.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cloak.fileio import write_bytes_atomic

__all__ = ["command_variants", "markdown_table", "publish", "write_json",
           "write_markdown_section"]


def command_variants(specs: Iterable[str], taken: Iterable[str]) -> dict[str, list[str]]:
    """A timing script's ``--vs LABEL=ARGS`` values: label -> the extra arguments (split as a
    shell splits words), in order.

    >>> command_variants(["bf16=--precision bfloat16"], ["shipped"])
    {'bf16': ['--precision', 'bfloat16']}

    Raises:
        SystemExit: a value without a label, or with a label in ``taken`` or given twice.
    """
    used, out = set(taken), {}
    for spec in specs:
        label, _, extra = spec.partition("=")
        if not label or label in used:
            raise SystemExit(f"--vs {spec!r}: give a new LABEL=ARGS")
        used.add(label)
        out[label] = shlex.split(extra)
    return out


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; floats are printed with 3 decimals."""

    def fmt(cell: Any) -> str:
        return f"{cell:.3f}" if isinstance(cell, float) else str(cell)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    _atomic_write(path, json.dumps(data, indent=2) + "\n")


def publish(result: dict[str, Any], body: str, json_path: Path | None,
            markdown_path: Path | None, command: str | None, section: str) -> str:
    """Write ``result`` (with the command line) as JSON and ``body`` as a markdown section.

    Args:
        result: the benchmark's JSON-ready results.
        body: the rendered markdown section.
        json_path: where the JSON goes (None = not written).
        markdown_path: the markdown report (None = not written).
        command: the command line, quoted in the JSON (the body quotes it itself).
        section: name of the report's section (``<!-- BEGIN name -->``) that is replaced.

    Returns:
        ``body``.
    """
    if json_path is not None:
        write_json(json_path, {"command": command, **result})
    if markdown_path is not None:
        write_markdown_section(markdown_path, section, body)
    return body


def write_markdown_section(path: Path, section: str, body: str) -> None:
    """Replace (or append) the section named ``section`` of the markdown file at ``path``."""
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    _atomic_write(path, text)

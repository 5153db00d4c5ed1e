"""A :class:`~cloak.check.result.CheckResult` as a terminal table.

One row per protected photo; per recognizer two words: against the clean references
(``protected`` / ``MATCHED``) and against the person's other protected photos (``unlinked`` /
``LINKED``, ``-`` when there is no other). Then one summary line per recognizer and the verdict.
"""

from __future__ import annotations

from cloak.check.result import CheckResult

__all__ = ["format_table"]


def _word(matched: bool | None, yes: str, no: str) -> str:
    return "-" if matched is None else (yes if matched else no)


def _fraction(count: int, total: int) -> str:
    return f"{count}/{total}" + (f" ({count / total:.0%})" if total else "")


def format_table(result: CheckResult) -> str:
    """The table, summary lines and verdict as text (no trailing newline)."""
    rule = result.rule if result.top1_available or result.rule == "far" else (
        f"{result.rule} -> far (no distractors)")
    names = result.recognizers
    header = ["photo", *names]
    rows = [[p.path.name, *(f"{_word(p.matched(n, result.rule), 'MATCHED', 'protected')} "
                            f"{_word(p.linked(n, result.rule), 'LINKED', 'unlinked')}"
                            for n in names)] for p in result.photos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [f"rule {rule} (FAR 1e-3); each cell: vs your clean references, vs your other "
             "protected photos"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in [header, *rows]]
    for name, entry in result.summary().items():
        lines.append(f"{name}: {_fraction(entry['protected'], entry['photos'])} photos "
                     f"protected; {_fraction(entry['unlinked'], entry['linkable'])} not linked "
                     "to your other protected photos")
    if result.excluded:
        lines.append(f"not used (they made the mask): {', '.join(result.excluded)}")
    lines += [f"note: {note}" for note in result.notes]
    verdict = (f"passed: no recognizer matched any of the {len(result.photos)} photos (evidence, "
               "not a guarantee: an attacker's recognizer may differ)" if result.passed else
               f"not passed: {result.matched} of {len(result.photos)} photos matched"
               + (f", {result.failed} inputs failed" if result.failed else ""))
    lines.append(verdict)
    return "\n".join(lines)

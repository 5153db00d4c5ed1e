"""The check's verdicts (:attr:`cloak.web.jobs.Progress.check`) in plain words for the page.

>>> photo_verdict({"sface": True, "faceres": False})["line"]
'1 of 2 recognizers fooled'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloak.report.inputs import PhotoChecks, protection_rates

__all__ = ["check_summary", "photo_verdict"]


def photo_verdict(verdicts: Mapping[str, bool]) -> dict[str, Any]:
    """One protected photo's verdicts (recognizer -> protected): ``{"line": "k of n
    recognizers fooled", "recognizers": [{"name", "fooled"}, ...]}``."""
    fooled = sum(verdicts.values())
    return {"line": f"{fooled} of {len(verdicts)} recognizer{'s' if len(verdicts) != 1 else ''} "
                    "fooled",
            "recognizers": [{"name": name, "fooled": ok} for name, ok in verdicts.items()]}


def check_summary(check: Mapping[str, Any]) -> dict[str, Any]:
    """The check of a run for the page: ``{"summary": one line, "note": what the verdicts
    mean or why there are none}``."""
    photos = check["photos"]
    if not photos:
        return {"summary": "No recognizer verdicts.", "note": check["note"]}
    rates = protection_rates([PhotoChecks(name, verdicts) for name, verdicts in photos.items()])
    every = sum(all(verdicts.values()) for verdicts in photos.values())
    per = ", ".join(f"{name} {done} of {total}" for name, (done, total) in rates.items())
    return {"summary": f"{every} of {len(photos)} protected photo{'s' if len(photos) != 1 else ''}"
                       f" fooled every recognizer checked (photos fooled per recognizer: {per}).",
            "note": check["note"]}

"""The verification thresholds ``cloak check`` judges with, calibrated by the benchmarks.

``cloak/data/thresholds.json`` holds, per recognizer of
:data:`attackers.black_boxes.RECOGNIZERS`, the cosine-similarity thresholds at false-accept
rates 1e-2 and 1e-3 on every pair of the 2,679 LFW distractors, computed exactly as the
robustness benchmark computes them (``python scripts/calibrate_thresholds.py`` writes it; the
product never imports the benchmarks). Each entry records the zoo model, its runtime and its
weights' sha256, checked here against the zoo, so a threshold is never applied to another model.
Thresholds are numbers, not face features (DESIGN section 7).

>>> # load_thresholds()["sface"]    # threshold at FAR 1e-3, about 0.369
"""

from __future__ import annotations

import json
from pathlib import Path

from attackers import zoo
from attackers.black_boxes import RECOGNIZERS

__all__ = ["CHECK_FAR", "THRESHOLDS_FILE", "THRESHOLD_FARS", "load_thresholds"]

#: The shipped calibration (package data of ``cloak``).
THRESHOLDS_FILE = Path(__file__).resolve().parents[1] / "data" / "thresholds.json"
#: False-accept rates the calibration holds.
THRESHOLD_FARS: tuple[float, ...] = (1e-2, 1e-3)
#: The false-accept rate ``cloak check`` matches at: 1 in 1,000 pairs of different people.
CHECK_FAR = 1e-3


def load_thresholds(far: float = CHECK_FAR, path: Path = THRESHOLDS_FILE) -> dict[str, float]:
    """Recognizer name -> cosine-similarity threshold at ``far`` (a pair matches above it).

    Raises:
        ValueError: the file lacks ``far``, or an entry's zoo model, runtime or weights differ
            from :data:`~attackers.black_boxes.RECOGNIZERS` and the zoo (recalibrate).
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    key = f"{far:g}"
    out = {}
    for name, entry in data["recognizers"].items():
        zoo_name, reference = RECOGNIZERS[name]
        if (entry["zoo"], entry["reference_runtime"]) != (zoo_name, reference) or (
                entry["weights"] != zoo.weights_digests(zoo_name)):
            raise ValueError(f"{path}: {name} was calibrated on another model or runtime; "
                             "run scripts/calibrate_thresholds.py")
        if key not in entry["thresholds"]:
            raise ValueError(f"{path}: no threshold at FAR {key} for {name}")
        out[name] = float(entry["thresholds"][key])
    return out

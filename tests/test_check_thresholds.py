"""The thresholds ``cloak check`` ships (:mod:`cloak.check.thresholds`): the benchmark's own.

``scripts/calibrate_thresholds.py`` wrote ``cloak/data/thresholds.json`` from the distractor
features the benchmarks cache; the robustness benchmark's JSON (docs/results/robustness.json)
holds the thresholds it applied to its five black boxes. They agree to float rounding (the
features were recomputed since that run: 7.6e-6 at most, with the same false-accept rates on
the calibration). faceres-deep and mobileface are calibrated the same way.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

from attackers.black_boxes import BLACK_BOXES, RECOGNIZERS
from cloak.check.thresholds import THRESHOLD_FARS, THRESHOLDS_FILE, load_thresholds


def test_shipped_thresholds_are_the_benchmarks() -> None:
    shipped = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))["recognizers"]
    benchmark = json.loads((REPO_ROOT / "docs" / "results" / "robustness.json")
                           .read_text(encoding="utf-8"))["thresholds"]
    assert set(shipped) == set(RECOGNIZERS) and set(benchmark) == set(BLACK_BOXES)
    for name in BLACK_BOXES:
        entry = shipped[name]
        for far in THRESHOLD_FARS:
            key = f"{far:g}"
            assert entry["thresholds"][key] == pytest.approx(
                benchmark[name][key]["threshold"], abs=1e-5), (name, key)
            assert entry["far_on_calibration"][key] == benchmark[name][key]["far"]
            assert entry["pairs"] == benchmark[name][key]["pairs"] == 2679 * 2678 // 2


def test_load_thresholds() -> None:
    at_1e3, at_1e2 = load_thresholds(), load_thresholds(1e-2)
    assert list(at_1e3) == list(RECOGNIZERS)
    assert all(-1 < at_1e2[n] < at_1e3[n] < 1 for n in RECOGNIZERS)   # stricter at lower FAR


def test_exception(tmp_path) -> None:
    """A threshold is never applied to another runtime or to a FAR it was not calibrated at."""
    data = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    data["recognizers"]["sface"]["reference_runtime"] = False
    tampered = tmp_path / "thresholds.json"
    tampered.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="sface was calibrated on another model or runtime"):
        load_thresholds(path=tampered)
    with pytest.raises(ValueError, match="no threshold at FAR 0.05"):
        load_thresholds(0.05)

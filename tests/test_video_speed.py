"""The same-run speed comparison of two code trees' cloak video, on a tiny clip of real faces.

Both "trees" are this checkout, so every run must name the same tracks and hand the encoder the
same masked pixels (render digests equal at one thread), whatever the speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_data

from evaluation.video.settings import VideoBenchmarkSettings
from evaluation.video.speed import compare_trees, prepare_inputs, speed_markdown, summarise_speed

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "scripts" / "video_speed.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.data
def test_two_trees_in_turns(tmp_path: Path) -> None:
    settings = VideoBenchmarkSettings(lfw=shared_data("lfw"), people=2, seconds=0.8,
                                      size="320x240", steps=1, cache_dir=tmp_path / "cache",
                                      progress=False)
    spec = prepare_inputs(settings, tmp_path, lambda _: None)
    described = json.loads(spec.read_text())
    assert described["frames"] == 20 and len(described["people"]) == 2
    runs = compare_trees({"old": REPO, "new": REPO}, spec, DRIVER, rounds=2, threads=1,
                         say=lambda _: None)
    assert [(r["round"], r["tree"]) for r in runs] == [(0, "old"), (0, "new"), (1, "new"),
                                                      (1, "old")]
    names = sorted(p["name"] for p in described["people"])
    for run in runs:
        assert run["placement"]["right"] == run["placement"]["needed"] == 2 * 20
        assert run["placement"]["wrong_frames"] == 0
        assert sorted(p for p in run["tracks"] if p is not None) == names
        assert run["cpu_ms_per_frame"] > 0 and run["frames_per_second"] > 0
    assert len({r["masked_pixels"] for r in runs}) == 1
    summary = summarise_speed(runs, "old", "new")
    assert len(summary["ratios"]) == 2 and summary["median_cpu_ratio"] > 0
    result = {"summary": summary, "trees": {"old": str(REPO), "new": str(REPO)},
              "labels": described["labels"], "frames": 20, "fps": 25,
              "frame_size": [320, 240], "rounds": 2, "threads": 1, "cpu": "x", "runs": runs}
    text = speed_markdown(result, "cmd")
    assert "`cmd`" in text and "| new (" in text and "40, 40 of 40" in text


def test_a_failed_run_names_its_tree(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="old"):
        compare_trees({"old": REPO, "new": REPO}, tmp_path / "missing.json", DRIVER, rounds=1,
                      threads=1, say=lambda _: None)

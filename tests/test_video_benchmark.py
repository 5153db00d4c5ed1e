"""The video benchmark end to end on a tiny setting, and its mask-placement measure.

One clip of two LFW identities (the first two by name with 15 photos with a face) and a stranger,
320x240, 40 frames (the speed at which tracks link at stride 4); masks learned with one real
optimisation step (facenet, dlib-resnet); sface as the only black box, against 40 distractors.
Figures are not the point here (the markdown report is): the test checks that every part runs on
real models and that the measures add up.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import shared_data

from cloak.video.tracks import FaceInFrame
from evaluation.video.placement import mask_assignment
from evaluation.video.report import write_report
from evaluation.video.run import run_video_benchmark
from evaluation.video.settings import VideoBenchmarkSettings, parse_size
from evaluation.video_clips import SyntheticClip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    settings = VideoBenchmarkSettings(
        lfw=shared_data("lfw"), people=2, seconds=1.6, size="320x240", tested=("sface",),
        steps=1, distractors=40, eval_every=5, threads=1,
        cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return run_video_benchmark(settings)


@pytest.mark.data
def test_smoke(result: dict, tmp_path) -> None:
    assert result["frames_per_clip"] == 40 and len(result["clips"]) == 1
    clip = result["clips"][0]
    assert len(clip["people"]) == 2 and clip["evaluated_frames"] == list(range(0, 40, 5))
    run = clip["runs"][0]
    assert run["fold"] == "fast" and run["frames_per_second"] > 0
    named = sorted(t["person"] for t in run["tracks"] if t["person"] is not None)
    assert named == sorted(clip["people"])
    text = write_report(result, tmp_path / "v.json", tmp_path / "B.md", "cmd", "video")
    assert "| sface |" in text and "right mask on the right person" in text
    assert "<!-- BEGIN video -->" in (tmp_path / "B.md").read_text()
    assert json.loads((tmp_path / "v.json").read_text())["command"] == "cmd"


@pytest.mark.data
def test_measures_add_up(result: dict) -> None:
    summary = result["summary"]
    assert summary["right_mask_share"] == 1.0 and summary["wrong_mask_frames"] == 0
    assert summary["person_frames"] == 2 * 40
    sface = summary["recognizers"]["sface"]
    assert (sface["face_frames"], sface["tracks"], sface["photos"]) == (16, 2, 10)
    # unprotected, sface finds these people in the clip's frames (the clean baseline)
    assert sface["clean_frame_psr@1"] <= 0.25
    for value in ("frame_psr@1", "track_psr@1", "photo_psr@1"):
        assert 0.0 <= sface[value] <= 1.0


def test_mask_assignment_catches_swaps() -> None:
    """A plan that puts A's mask on B is counted wrong; the right plan is counted right."""
    marks = torch.tensor([[30.0, 40.0], [50.0, 40.0], [40.0, 50.0], [32.0, 60.0], [48.0, 60.0]])
    truth = torch.stack([marks, marks + torch.tensor([100.0, 0.0])])[None].repeat(3, 1, 1, 1)
    boxes = torch.tensor([[20.0, 30.0, 60.0, 70.0], [120.0, 30.0, 160.0, 70.0]])[None]
    clip = SyntheticClip(None, 25, ("A", "B"), boxes.repeat(3, 1, 1), truth,
                         torch.ones(3, 2, dtype=torch.bool))
    matrix = torch.zeros(2, 3)

    def face(person: str, actor: int) -> FaceInFrame:
        return FaceInFrame(actor, person, matrix, truth[0, actor] + 1.0)

    right = mask_assignment([[face("A", 0), face("B", 1)]] * 3, clip, {"A", "B"})
    assert (right["right"], right["needed"], right["wrong_frames"]) == (6, 6, 0)
    swapped = mask_assignment([[face("A", 0), face("B", 1)], [face("B", 0)], []], clip,
                              {"A", "B"})
    assert (swapped["right"], swapped["wrong_frames"], swapped["wrong_faces"]) == (2, 1, 1)
    assert parse_size("720p") == (1280, 720)
    with pytest.raises(ValueError, match="WxH"):
        parse_size("big")

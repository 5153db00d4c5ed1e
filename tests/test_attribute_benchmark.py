"""The attribute-leakage benchmark (evaluation.attribute_benchmark) on a few real faces.

One small run (4 UTKFace faces from each folder, one LFW identity, cloaks of 2 steps) is shared
by the tests; a second run with the same settings must reuse every finished record.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from conftest import shared_data

import attackers
from attackers.landmarks import Landmarker
from cloak.faces import align_faces
from cloak.opom import MODES, learn_mask, training_face
from evaluation.attribute_benchmark import (
    CONDITIONS,
    PREDICTORS,
    AttributeSettings,
    condition_photos,
    run_attribute_benchmark,
    utkface_faces,
    write_report,
)
from evaluation.lfw import load_rgb
from evaluation.physical_masks import STYLES

_STEPS = 2


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> AttributeSettings:
    # 4 faces: the first 3 of utkface/random in the benchmark's order are all race 0, where race
    # predictability (and so gear's PVI) is undefined
    return AttributeSettings(utkface=shared_data("utkface"), lfw=shared_data("lfw"), limit=4,
                             lfw_limit=1, steps=_STEPS, n_boot=200,
                             cache_dir=tmp_path_factory.mktemp("attribute-cache"),
                             progress=False)


@pytest.fixture(scope="module")
def result(settings, one_torch_thread) -> dict:
    return run_attribute_benchmark(settings)


def test_malformed_names_are_set_aside():
    """The one UTKFace name with gender 3 is skipped with its reason; the others parse."""
    labelled, malformed = utkface_faces(shared_data("utkface", "random"))
    assert len(labelled) == 1999
    assert [m["file"] for m in malformed] == ["61_3_20170109150557335.jpg.chip.jpg"]
    assert "gender field '3'" in malformed[0]["reason"]
    first, _ = utkface_faces(shared_data("utkface", "balanced"), limit=6)
    assert len({(labels.male, labels.race) for _, labels in first}) >= 4   # a mixed sample


def test_every_condition_has_finite_metrics(result, settings):
    for dataset in settings.datasets:
        run = result["utkface"][dataset]
        summary = run["summary"]
        assert summary["files"] == 4 and summary["malformed"] == 0
        assert summary["scored"] == 4 - summary["not_detected"] - sum(
            not all("predictions" in f["conditions"][c] for c in CONDITIONS)
            for f in run["faces"] if f["detected"])
        assert summary["scored"] >= 3, "MTCNN or the masks failed on the padded chips"
        assert set(summary["mask_failed"]) == set(STYLES)
        assert set(summary["not_redetected"]) == set(CONDITIONS) - {"clean"}
        assert set(summary["metrics"]) == set(CONDITIONS)
        for condition, row in summary["metrics"].items():
            assert set(row) == set(PREDICTORS)
            for name, metrics in row.items():
                keys = {"sex", "age", "age_bin", "pvi"} | ({"race"} if name == "gear" else set())
                assert keys <= set(metrics), (condition, name)
                for key in keys:
                    assert math.isfinite(metrics[key]["value"]), (condition, name, key)
                assert 0 <= metrics["sex"]["value"] <= 1 and metrics["age"]["value"] >= 0
                assert ("relative_reduction" in metrics["pvi"]) == (condition != "clean")
    lfw = result["lfw"]["summary"]
    assert lfw["identities"] == 1 and lfw["probes"] == lfw["scored"] == 5
    assert set(lfw["flips"]) == set(CONDITIONS) - {"clean"}
    for row in lfw["flips"].values():
        for flips in row.values():
            assert 0 <= flips["sex"]["value"] <= 1 and flips["age_shift_years"]["value"] >= 0


def test_records_hold_plain_predictions(result, settings):
    """Records carry floats per predictor output, nothing image-like, and survive JSON."""
    face = next(f for f in result["utkface"]["balanced"]["faces"] if f["detected"])
    clean = face["conditions"]["clean"]["predictions"]
    assert set(clean) == set(PREDICTORS)
    assert isinstance(clean["gear"]["sex_male_prob"], float)
    assert len(clean["gear"]["race"]) == 5
    json.dumps(result, allow_nan=False)
    # a paper mask over the lower face moves the predicted ages (measured: 10-25 years on average)
    faces = [f for d in settings.datasets for f in result["utkface"][d]["faces"]
             if f["detected"] and "predictions" in f["conditions"]["mask-paper"]]
    for name in PREDICTORS:
        shift = np.mean([abs(f["conditions"]["mask-paper"]["predictions"][name]["age_years"]
                             - f["conditions"]["clean"]["predictions"][name]["age_years"])
                         for f in faces])
        assert shift > 1.0, name


def test_masks_and_cloaks_change_only_their_pixels(one_torch_thread):
    """Physical masks change pixels only inside their coverage; cloaks at most eps per pixel."""
    detector = attackers.load("mtcnn")
    labelled, _ = utkface_faces(shared_data("utkface", "balanced"), limit=2)
    photos = [load_rgb(p) for p, _ in labelled]
    pad = 50
    faces = []
    for photo in photos:
        found = align_faces([torch.nn.functional.pad(photo, (pad,) * 4)], detector)[0]
        assert found, "MTCNN found no face on the padded chip"
        faces.append(found[0])
    config = dataclasses.replace(MODES["fast"].config, steps=_STEPS)
    surrogates = [attackers.load(n) for n in MODES["fast"].surrogates]

    def cloak(_, pixels, face):
        return learn_mask([training_face(pixels, face)], surrogates, config)

    conditions = ("clean", *(f"mask-{s}" for s in STYLES), "cloak", "cloak+mask-paper")
    made = condition_photos(photos, faces, conditions, detector=detector,
                            landmarker=Landmarker(), cloak=cloak, seeds=[1, 2],
                            feather=config.feather, pad=pad)
    for photo, item in zip(photos, made, strict=True):
        assert not item.failed
        for style in STYLES:
            masked, covered = item.pixels[f"mask-{style}"], item.coverage[style]
            assert covered.shape == photo.shape[1:]
            assert 0.05 < covered.float().mean() < 0.6
            assert torch.equal(masked[:, ~covered], photo[:, ~covered])
            assert (masked[:, covered] != photo[:, covered]).any()
        for condition, source in (("cloak", "clean"), ("cloak+mask-paper", "mask-paper")):
            change = (item.pixels[condition] - item.pixels[source]).abs()
            assert 0 < change.max() <= config.eps
        for condition in conditions:
            pixels = item.pixels[condition]
            assert torch.equal(pixels, pixels.round()) and 0 <= pixels.min() <= pixels.max() <= 255
            assert item.frames[condition].shape == (3, 224, 224)
            assert condition in item.found


def test_rerun_reuses_every_record(result, settings):
    again = run_attribute_benchmark(settings)
    faces = sum(len(r["faces"]) for r in result["utkface"].values())
    assert again["cache"]["written"] == 0
    assert again["cache"]["reused"] == faces + 1
    assert again["cache"]["folder"] == result["cache"]["folder"]
    assert again["utkface"]["random"]["summary"]["metrics"] == \
        result["utkface"]["random"]["summary"]["metrics"]


def test_report_renders(result, tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    body = write_report(result, tmp_path / "out.json", markdown, command="pytest")
    text = markdown.read_text(encoding="utf-8")
    assert "<!-- BEGIN attributes -->" in text and "<!-- END attributes -->" in text
    assert body.strip() in text
    for condition in CONDITIONS:
        assert f"| {condition} |" in body
    assert "| baseline (chance / median-age MAE) |" in body
    assert "one-photo cloak" in body
    saved = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert saved["command"] == "pytest" and saved["records"] == "out.records.jsonl"
    assert saved["utkface"]["balanced"]["summary"] == result["utkface"]["balanced"]["summary"]
    lines = (tmp_path / "out.records.jsonl").read_text(encoding="utf-8").splitlines()
    parts = [json.loads(line)["part"] for line in lines]
    assert parts == ["utkface-balanced"] * 4 + ["utkface-random"] * 4 + ["lfw"]


def test_settings_are_checked():
    for bad in ({"conditions": ("cloak",)}, {"datasets": ("all",)}, {"limit": 0},
                {"predictors": ()}, {"pad_mode": "reflect"}, {"mode": "turbo"},
                {"datasets": (), "lfw_limit": 0}):
        with pytest.raises(ValueError):
            AttributeSettings(**bad).check()

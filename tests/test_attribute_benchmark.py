"""The attribute-leakage benchmark (evaluation.attributes) on a few real faces.

One small run (4 UTKFace faces from each folder, one LFW identity, cloaks of 2 steps) is shared
by the tests; a second run with the same settings must reuse every finished record. A second
small run (3 faces) checks the attribute-aware cloak's leave-one-out folds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import shared_data

from evaluation.attributes import (
    CONDITIONS,
    AttributeSettings,
    run_attribute_benchmark,
    write_report,
)
from evaluation.attributes.report import report_markdown
from evaluation.attributes.settings import PREDICTORS
from evaluation.physical_masks import STYLES

_STEPS = 2


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> AttributeSettings:
    # 4 faces: the first 3 of utkface/random in the benchmark's order are all race 0, where race
    # predictability (and so gear's PVI) is undefined
    return AttributeSettings(utkface=shared_data("utkface"), lfw=shared_data("lfw"), limit=4,
                             lfw_limit=1, lfw_distractors=60, steps=_STEPS, n_boot=200,
                             cache_dir=tmp_path_factory.mktemp("attribute-cache"),
                             progress=False)


@pytest.fixture(scope="module")
def result(settings, one_torch_thread) -> dict:
    return run_attribute_benchmark(settings)


@pytest.mark.data
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


@pytest.mark.data
def test_lfw_identity_psr_beside_the_flips(result, settings):
    """Every LFW condition is also searched by the black-box recognizers (none a surrogate)."""
    names = settings.lfw_recognizers()
    assert set(names) == {"sface", "mobilefacenet", "faceres"}       # fast mode: facenet, dlib
    psr = result["lfw"]["summary"]["identity_psr"]
    assert list(psr) == list(CONDITIONS)
    for row in psr.values():
        assert set(row["recognizers"]) == set(names)
        assert 0 <= row["mean"]["low"] <= row["mean"]["value"] <= row["mean"]["high"] <= 1
    probes = result["lfw"]["identities"][0]["probes"]
    assert all(set(p["conditions"][c]["ranks"]) == set(names) for p in probes for c in CONDITIONS)
    # clean probes are found at top-1 among 60 distractors (all 62 identities: PSR 0.01)
    assert psr["clean"]["mean"]["value"] <= 0.2


@pytest.mark.data
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


@pytest.mark.data
def test_rerun_reuses_every_record(result, settings):
    again = run_attribute_benchmark(settings)
    faces = sum(len(r["faces"]) for r in result["utkface"].values())
    assert again["cache"]["written"] == 0
    assert again["cache"]["reused"] == faces + 1
    assert again["cache"]["folder"] == result["cache"]["folder"]
    assert again["cache"]["lfw_folder"] == result["cache"]["lfw_folder"]
    assert result["cache"]["lfw_folder"] != result["cache"]["folder"]
    assert again["utkface"]["random"]["summary"]["metrics"] == \
        result["utkface"]["random"]["summary"]["metrics"]


@pytest.mark.data
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


@pytest.fixture(scope="module")
def attribute_result(tmp_path_factory, one_torch_thread) -> dict:
    settings = AttributeSettings(utkface=shared_data("utkface"), datasets=("balanced",),
                                 limit=3, lfw_limit=0, steps=_STEPS, n_boot=200,
                                 conditions=("clean", "cloak", "cloak-attr"),
                                 protect_attributes=("sex",),
                                 cache_dir=tmp_path_factory.mktemp("attr-cloak"), progress=False)
    return run_attribute_benchmark(settings)


@pytest.mark.data
def test_attribute_cloak_is_scored_leave_one_out(attribute_result):
    run = attribute_result["utkface"]["balanced"]
    assert run["summary"]["scored"] >= 2
    for face in (f for f in run["faces"] if f["detected"]):
        record = face["conditions"]["cloak-attr"]
        folds = record["folds"]
        assert set(folds) == {"gear", "age-gender+faceres-attributes"}
        assert record["predictions"]["gear"] == folds["gear"]["predictions"]["gear"]
        for name in ("age-gender", "faceres-attributes"):
            assert (record["predictions"][name]
                    == folds["age-gender+faceres-attributes"]["predictions"][name])
        for fold in [*folds.values(), face["conditions"]["cloak"]]:
            assert set(fold["identity"]) == {"sface", "mobilefacenet"}
            assert all(0.5 < c <= 1.0 for c in fold["identity"].values()), fold["identity"]
            assert 0.8 < fold["ssim"] < 1.0
        # the two folds' cloaks differ (different attribute surrogates)
        assert folds["gear"]["predictions"] != folds["age-gender+faceres-attributes"][
            "predictions"]
    summary = run["summary"]
    assert set(summary["metrics"]["cloak-attr"]) == set(PREDICTORS)
    cloak = summary["attribute_cloak"]
    assert set(cloak["folds"]) == {"gear", "age-gender+faceres-attributes"}
    assert cloak["folds"]["gear"]["surrogates"] == {"age-gender": ("sex",),
                                                    "faceres-attributes": ("sex",)}
    for name in PREDICTORS:
        assert 0 <= cloak["folds"]["gear"]["metrics"][name]["sex"]["value"] <= 1
    body = report_markdown(attribute_result)
    assert "| cloak-attr |" in body and "| cloak-attr fold |" in body and " wb" in body
    assert "leave-one-out" in body

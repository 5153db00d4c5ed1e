"""The OPOM benchmark (evaluation/opom): its conditions, settings and one small real run
(2 LFW identities, 100 distractors, dlib-native as the black box, a 2-step mask from
mobilefacenet)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import shared_data

from cloak.opom import TERMS
from evaluation.opom.conditions import ABLATIONS, CONDITION_BY_NAME, CONDITIONS
from evaluation.opom.run import run_benchmark
from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.folds import Fold
from evaluation.protocol.gallery import distractor_features


def test_condition_names_and_order():
    assert CONDITIONS == ("clean", "noise", "center", "affine", "convex", "convex-train",
                          "refine", "refine-shift2", "refine-shift4", "refine-swap",
                          "refine-joint", "refine-batch2", "refine-joint-center",
                          "refine-joint-convex", "refine-joint-train-center",
                          "refine-joint-train-convex", "refine-joint-train-center-draws3",
                          "refine-joint-train-center-draws3-si",
                          "refine-joint-train-center-draws3-si-ni",
                          "opom", "opom+linkage", "opom+views", "opom+linkage+views",
                          "convex-all-photos")
    masked = [c for c in CONDITIONS if CONDITION_BY_NAME[c].masked]
    assert masked == list(CONDITIONS[2:])


def test_refine_diagnostics_rearrange_the_probes_masks():
    masks = [torch.arange(3 * 6 * 6, dtype=torch.float32).reshape(3, 6, 6) + 1000 * k
             for k in range(3)]
    assert CONDITION_BY_NAME["refine"].arrange(masks) == masks
    swapped = CONDITION_BY_NAME["refine-swap"].arrange(masks)
    assert [int(m[0, 0, 0]) // 1000 for m in swapped] == [1, 2, 0]
    shifted = CONDITION_BY_NAME["refine-shift2"].arrange(masks)
    for before, after in zip(masks, shifted, strict=True):
        assert torch.equal(after[:, 2:, 2:], before[:, :-2, :-2])
    for name in ("refine-shift2", "refine-shift4", "refine-swap"):
        assert CONDITION_BY_NAME[name].config(BenchmarkSettings()) == \
            CONDITION_BY_NAME["refine"].config(BenchmarkSettings())


def test_condition_configs():
    settings = BenchmarkSettings(mode="fast", seed=3)
    for name in ("center", "affine", "convex"):
        assert CONDITION_BY_NAME[name].config(settings) == settings.config(name)
    refine = CONDITION_BY_NAME["refine"].config(settings)
    assert refine == settings.config("convex") and refine.seed == 3
    for name, terms in ABLATIONS.items():
        config = CONDITION_BY_NAME[name].config(settings)
        assert config.subspace == "convex"
        assert config.linkage == (TERMS["linkage"] if "linkage" in terms else 0.0)
    assert CONDITION_BY_NAME["clean"].config(settings) is None
    assert CONDITION_BY_NAME["noise"].config(settings) is None
    # balanced mode learns from 5 photos per step; convex-all-photos from all, as it did
    # before, so its settings (and stored masks) are those of balanced's convex before then
    balanced = BenchmarkSettings(mode="balanced")
    assert CONDITION_BY_NAME["convex"].config(balanced).per_step == 5
    everyone = CONDITION_BY_NAME["convex-all-photos"].config(balanced)
    assert everyone == replace(balanced.config("convex"), per_step=0)
    assert "per_step" not in everyone.as_record()


def test_stored_entries_are_current_only_with_the_same_settings():
    settings = BenchmarkSettings(mode="fast")
    convex, noise = CONDITION_BY_NAME["convex"], CONDITION_BY_NAME["noise"]
    entry = {"ranks": {}, "linkage": {}, "config": settings.config("convex").as_record()}
    assert "precision" not in entry["config"]        # records from before the setting match
    assert convex.is_current(entry, settings)
    assert not convex.is_current(entry, replace(settings, steps=3))
    assert not convex.is_current(entry, replace(settings, precision="bfloat16"))
    assert not convex.is_current({k: v for k, v in entry.items() if k != "linkage"}, settings)
    assert not convex.is_current(None, settings)
    assert noise.is_current({"ranks": {}, "linkage": {}}, replace(settings, steps=3))
    refine = CONDITION_BY_NAME["refine"]
    stored = {**entry, "refine_steps": 10}
    assert refine.is_current(stored, settings)
    assert not refine.is_current(stored, replace(settings, refine_steps=2))


@pytest.mark.data
def test_unknown_person_is_named():
    lfw = shared_data("lfw")
    with pytest.raises(ValueError, match="no identities named Nobody_Here"):
        run_benchmark(BenchmarkSettings(lfw=lfw, people=("Colin_Powell", "Nobody_Here")))


@pytest.mark.data
def test_small_real_benchmark(tmp_path, one_torch_thread):
    lfw = shared_data("lfw")
    fold = Fold("T", ("mobilefacenet",), ("dlib-native",))
    settings = BenchmarkSettings(lfw=lfw, limit=2, distractors=100,
                                 conditions=("clean", "noise", "center"), folds=(fold,), steps=2,
                                 n_boot=200, cache_dir=tmp_path, progress=False)
    result = run_benchmark(settings)
    json.dumps(result, allow_nan=False)                         # plain JSON, no features inside
    assert result["people"] == ["Alejandro_Toledo", "Alvaro_Uribe"]
    assert result["distractors"]["files"] == 100
    assert result["distractors"]["with_face"] >= 90
    summary = result["summary"]
    clean = summary["clean"]["recognizers"]["dlib-native"]
    assert clean["probes"] == 10
    assert clean["psr@1"] <= 0.2                               # dlib finds the clean person
    assert clean["psr@5"] <= clean["psr@1"]
    assert summary["clean"]["mean"]["psr@1"] == clean["psr@1"]
    assert summary["noise"]["mean"]["psr@1"] <= 0.3            # noise alone hides nobody
    assert summary["noise"]["learn_s_per_mask"] is None
    quality = summary["center"]["quality"]
    assert quality["photos"] == 10
    assert quality["linf_max"] <= 8.0                          # eps holds on the 8-bit photo
    assert quality["ssim_min"] > 0.9
    assert 30 < quality["psnr_mean"] < 60
    assert summary["center"]["protect_s_per_photo"] < 1.0
    assert summary["center"]["learn_s_per_fold"]["T"] > 0
    record = result["identities"][0]
    assert len(record["conditions"]["center"]["ranks"]["dlib-native"]) == 5
    assert record["probes"][0] not in record["train"]
    # each finished identity is stored (no features), and a rerun resumes from them
    stored = sorted(p.name for p in tmp_path.glob("runs/*/*.json"))
    assert stored == ["Alejandro_Toledo.json", "Alvaro_Uribe.json"]
    lines: list[str] = []
    resumed = run_benchmark(settings, log_line=lines.append)
    assert lines == [f"resumed 2 stored identities from {next(tmp_path.glob('runs/*'))}"]
    assert resumed["identities"] == json.loads(json.dumps(result["identities"]))
    assert resumed["summary"]["center"]["mean"] == summary["center"]["mean"]
    # asking for one more condition computes only that one and keeps the stored ones
    more = run_benchmark(replace(settings, conditions=("clean", "center", "affine")))
    assert [sorted(r["conditions"]) for r in more["identities"]] == [
        ["affine", "center", "clean"]] * 2
    assert more["summary"]["center"]["mean"] == summary["center"]["mean"]
    stored = json.loads(next(tmp_path.glob("runs/*/Alvaro_Uribe.json")).read_text())
    assert sorted(stored["conditions"]) == ["affine", "center", "clean", "noise"]
    # refine: the convex mask refined per probe; entries record their steps, other steps redo it
    refined = run_benchmark(replace(
        settings, conditions=("clean", "refine", "refine-swap", "refine-joint", "refine-batch2",
                              "convex-train"),
        refine_steps=2))
    entry = refined["identities"][0]["conditions"]["refine"]
    assert entry["refine_steps"] == 2 and len(entry["refine_s"]) == 5
    # the swap diagnostic pastes the same refined masks (computed once) on other probes
    swap = refined["identities"][0]["conditions"]["refine-swap"]
    assert swap["refine_s"] == entry["refine_s"] and swap["learn_s"] == entry["learn_s"]
    assert swap["quality"] != entry["quality"]
    # refine-joint: one refined mask per probe from the same convex mask, all probes at once
    joint = refined["identities"][0]["conditions"]["refine-joint"]
    assert joint["refine_steps"] == 2 and len(joint["refine_s"]) == 5
    assert joint["learn_s"] == entry["learn_s"] and joint["quality"] != entry["quality"]
    assert refined["summary"]["refine-joint"]["quality"]["linf_max"] <= 8.0
    # refine-batch2: the same probes in batches of 2, 2 and 1, later ones kept apart from earlier
    batched = refined["identities"][0]["conditions"]["refine-batch2"]
    assert len(batched["refine_s"]) == 5 and batched["learn_s"] == entry["learn_s"]
    assert batched["quality"] != joint["quality"]
    # convex-train: the same convex mask (learned once) on the 10 training photos
    train = refined["identities"][0]["conditions"]["convex-train"]
    assert len(train["ranks"]["dlib-native"]) == len(train["quality"]) == 10
    assert train["learn_s"] == entry["learn_s"]
    assert all(0 <= r <= 100 for r in train["ranks"]["dlib-native"])
    row = refined["summary"]["refine"]
    assert row["refine_s_per_photo"] > 0 and row["quality"]["linf_max"] <= 8.0
    assert row["recognizers"]["dlib-native"]["fold"] == "T"
    again = run_benchmark(replace(
        settings, conditions=("clean", "refine", "refine-swap", "refine-joint", "refine-batch2",
                              "convex-train"),
        refine_steps=2))
    assert again["identities"] == json.loads(json.dumps(refined["identities"]))
    other = run_benchmark(replace(settings, conditions=("clean", "refine"), refine_steps=3))
    assert other["identities"][0]["conditions"]["refine"]["refine_steps"] == 3
    # universal masks are stored once learned (npy + sidecar) and a later run reuses them
    assert other["identities"][0]["conditions"]["refine"]["learn_s"] == entry["learn_s"]
    assert {p.name for p in tmp_path.glob("masks/*/*.npy")} == {
        "Alejandro_Toledo__T.npy", "Alvaro_Uribe__T.npy"}
    assert len(list(tmp_path.glob("masks/*"))) == 3             # center, affine, convex
    assert other["identities"][0]["conditions"]["clean"] == refined["identities"][0][
        "conditions"]["clean"]
    # protected vs protected (linkage) beside the usual direction; clean links as it matches
    assert record["conditions"]["clean"]["linkage"] == record["conditions"]["clean"]["ranks"]
    assert len(record["conditions"]["center"]["linkage"]["dlib-native"]) == 5
    assert 0.0 <= summary["center"]["linkage_mean"]["psr@1"] <= 1.0
    assert summary["clean"]["linkage_mean"]["psr@1"] == summary["clean"]["mean"]["psr@1"]
    # an ablation: the convex mask with only the named term; entries record their settings,
    # other settings are computed again and the rest is kept
    ablated = run_benchmark(replace(settings, conditions=("clean", "opom", "opom+linkage")))
    entries = ablated["identities"][0]["conditions"]
    assert entries["opom"]["config"]["linkage"] == 0.0
    assert entries["opom+linkage"]["config"]["linkage"] == TERMS["linkage"] > 0
    assert entries["opom+linkage"]["config"]["subspace"] == "convex"
    heavier = run_benchmark(replace(settings, conditions=("clean", "opom+linkage"), linkage=3.0))
    redone = heavier["identities"][0]["conditions"]
    assert redone["opom+linkage"]["config"]["linkage"] == 3.0
    assert redone["clean"] == entries["clean"]
    # the caches exist, match their sidecars, and are reused without detecting again
    sidecars = sorted(p.name for p in tmp_path.glob("*.json"))
    assert [s.split("-distractors-")[0] for s in sidecars] == ["dlib-native", "mtcnn"]
    meta = json.loads((tmp_path / sidecars[0]).read_text())
    assert len(meta["files"]) == 100 and meta["recognizer"] == "dlib-native"
    files = sorted((lfw / "distractors").glob("*.jpg"))[:100]
    import attackers

    again = distractor_features(files, ["dlib-native"], {"dlib-native": attackers.load(
        "dlib-native")}, detector=None, cache_dir=tmp_path, progress=False)
    assert again["dlib-native"].shape == (result["distractors"]["with_face"], 128)
    norms = again["dlib-native"].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))

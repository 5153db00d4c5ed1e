"""The OPOM protocol: splits, galleries, ranks, PSR and bootstrap against hand computations, the
leave-one-out fold plans, and one small real benchmark run (2 LFW identities, 100 distractors,
dlib-native as the black box, a 2-step mask from mobilefacenet)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import shared_data

from cloak.opom import TERMS
from evaluation.opom_benchmark import (
    BLACK_BOXES,
    FOLD_PLANS,
    BenchmarkSettings,
    Fold,
    check_folds,
    distractor_features,
    model_of,
    run_benchmark,
)
from evaluation.protocol import (
    bootstrap_interval,
    gallery_for_probe,
    identity_ranks,
    psr,
    split_photos,
)

# ------------------------------------------------------------------------------- splits, gallery


def test_split_photos():
    photos = [f"p{i:02d}.jpg" for i in range(17)]
    split = split_photos("x", photos)
    assert split.train == photos[:10]
    assert split.probes == photos[10:15]                  # photos 15, 16 are not used
    assert split_photos("x", photos[:14]) is None         # too few usable photos: left out
    assert split_photos("x", photos[:4], n_train=2, n_probe=2).probes == photos[2:4]
    with pytest.raises(ValueError, match="n_probe"):
        split_photos("x", photos, n_probe=1)


def test_gallery_for_probe():
    feats = torch.eye(8)
    clean, distractors = feats[:5], feats[5:]
    gallery, genuine = gallery_for_probe(clean, distractors, probe=2)
    assert gallery.shape == (4 + 3, 8)
    assert genuine.tolist() == [True] * 4 + [False] * 3
    # the probe's own photo is not in its gallery; the person's other probes and all distractors are
    assert not (gallery == clean[2]).all(1).any()
    for other in (0, 1, 3, 4):
        assert (gallery[genuine] == clean[other]).all(1).sum() == 1
    torch.testing.assert_close(gallery[~genuine], distractors)
    with pytest.raises(IndexError):
        gallery_for_probe(clean, distractors, probe=5)


def test_identity_ranks_by_hand():
    clean = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    distractors = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
    # probe 0: genuine best 0.8 (c1), distractors 0.6, -1     -> rank 0
    # probe 1: genuine best 0.8 (c0), distractor d0 0.96       -> rank 1
    # probe 2: genuine best 0.6 (c1), distractor d0 0.8, d1 0  -> rank 1
    ranks = identity_ranks(clean, clean, distractors)
    assert ranks.tolist() == [0, 1, 1]
    assert psr(ranks, 1) == pytest.approx(2 / 3)
    assert psr(ranks, 2) == 0.0
    # probe 0, q = (-0.6, 0.8): genuine c2 = 0.8, c1 = 0; d0 = 0.28, d1 = 0.6 -> rank 0
    queries = torch.tensor([[-0.6, 0.8], [-1.0, 0.0], [float("nan")] * 2])
    # probe 1: q = d1 exactly: genuine best max(-1, 0) = 0; d1 = 1, d0 = -0.6 -> rank 1
    # probe 2: no face found again -> rank N = 2 (the person is found nowhere)
    assert identity_ranks(queries, clean, distractors).tolist() == [0, 1, 2]


def test_identity_ranks_ties_count_for_the_person():
    clean = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    distractors = torch.tensor([[0.0, 1.0]])             # identical to the person's probe 1
    queries = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert identity_ranks(queries, clean, distractors).tolist() == [0, 1]


def test_psr():
    assert psr(np.array([0, 1, 5, 10]), 1) == 0.75
    assert psr(np.array([[0, 1], [5, 10]]), 5) == 0.5
    with pytest.raises(ValueError, match="k"):
        psr(np.array([0]), 0)


def test_bootstrap_interval_by_hand():
    assert bootstrap_interval(np.full(7, 0.4), n_boot=100) == pytest.approx((0.4, 0.4))
    # two identities with rates 0 and 1: replicate means 0, 0.5, 1 with probability 1/4, 1/2, 1/4
    assert bootstrap_interval(np.array([0.0, 1.0]), n_boot=4000) == (0.0, 1.0)
    assert bootstrap_interval(np.array([0.0, 1.0]), n_boot=4000, level=0.4) == (0.5, 0.5)
    # pooled rate: 1/2 and 3/4 alone, 4/6 mixed
    low, high = bootstrap_interval(np.array([1, 3]), np.array([2, 4]), n_boot=4000, level=0.99)
    assert (low, high) == pytest.approx((0.5, 0.75))
    # mean over two recognizers: column rates {0, .5, 1} and always 1 -> means {.5, .75, 1}
    both = np.array([[0, 1], [1, 1]])
    assert bootstrap_interval(both, n_boot=4000, level=0.4) == (0.75, 0.75)
    assert bootstrap_interval(both, n_boot=4000, level=0.99) == (0.5, 1.0)
    # seeded
    values = np.random.default_rng(1).random(20)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_interval(np.ones(3), np.ones(4))


# ------------------------------------------------------------------------------- folds


def test_fold_plans_are_leave_one_out():
    for folds in FOLD_PLANS.values():
        check_folds(folds)
        for fold in folds:
            models = {model_of(s) for s in fold.surrogates}
            assert not models & {model_of(t) for t in fold.tested}
    tested_twice = [t for f in FOLD_PLANS["two"] for t in f.tested]
    assert sorted(tested_twice) == sorted(BLACK_BOXES)            # every model tested once
    full = {f.tested[0]: f.surrogates for f in FOLD_PLANS["full"]}
    assert "dlib-resnet" not in full["dlib-native"] and len(full["dlib-native"]) == 4
    with pytest.raises(ValueError, match="leave-one-out"):
        check_folds([Fold("bad", ("dlib-resnet", "facenet"), ("dlib-native",))])
    with pytest.raises(ValueError, match="another fold"):
        check_folds([Fold("a", ("facenet",), ("sface",)), Fold("b", ("faceres",), ("sface",))])
    with pytest.raises(ValueError, match="unknown"):
        BenchmarkSettings(conditions=("clean", "blur")).check()


@pytest.mark.data
def test_unknown_person_is_named():
    lfw = shared_data("lfw")
    with pytest.raises(ValueError, match="no identities named Nobody_Here"):
        run_benchmark(BenchmarkSettings(lfw=lfw, people=("Colin_Powell", "Nobody_Here")))


# ------------------------------------------------------------------------------- a real run


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
    refined = run_benchmark(replace(settings, conditions=("clean", "refine"), refine_steps=2))
    entry = refined["identities"][0]["conditions"]["refine"]
    assert entry["refine_steps"] == 2 and len(entry["refine_s"]) == 5
    row = refined["summary"]["refine"]
    assert row["refine_s_per_photo"] > 0 and row["quality"]["linf_max"] <= 8.0
    assert row["recognizers"]["dlib-native"]["fold"] == "T"
    again = run_benchmark(replace(settings, conditions=("clean", "refine"), refine_steps=2))
    assert again["identities"] == json.loads(json.dumps(refined["identities"]))
    other = run_benchmark(replace(settings, conditions=("clean", "refine"), refine_steps=3))
    assert other["identities"][0]["conditions"]["refine"]["refine_steps"] == 3
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

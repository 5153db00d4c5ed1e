"""The robustness benchmark's parts: matching directions and verification thresholds against hand
computations, the mask-estimation attack on a known mask added to real LFW faces (sface as the
recognizer), the re-detection conditions on a real photo, and the record and mask stores' keys.

Margins of the estimation test, measured on Colin_Powell_0001-0013 (10 photos carry the mask, 3
are probes) with a sign pattern of Gaussian-smoothed noise (sigma 2 px) at +/-8 levels, feathered
as pasted: correlation of the estimate with the mask 0.64 (median 9) and 0.68 (Gaussian 2), from
the clean photos -0.007 and -0.005; mean sface cosine to the clean probe 0.877 protected, 0.894
and 0.915 after subtracting the estimate.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import lfw_photos, shared_data
from scipy.ndimage import gaussian_filter

from evaluation.mask_attacks import (
    DENOISERS,
    denoise,
    estimate_mask,
    mask_correlation,
    subtract_mask,
)
from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.ranks import identity_ranks
from evaluation.robustness.run import stores
from evaluation.robustness.settings import RobustnessSettings
from evaluation.robustness.summary import psr_row, verification_summary
from evaluation.robustness.views import frames_after, jitter_offsets
from evaluation.verification import (
    far_threshold,
    gallery_ranks,
    genuine_scores,
    impostor_scores,
    rejection_rate,
)

NAN = float("nan")

# ------------------------------------------------------------------------------- matching


def test_three_matching_directions_by_hand():
    e = torch.eye(4)
    clean = e[:3]                                      # the person's clean photos: e0, e1, e2
    protected = torch.stack([e[3], e[1], torch.full((4,), NAN)])   # photo 2: no face found
    distractors = torch.tensor([[0.0, 0.6, 0.0, 0.8], [0.8, 0.0, 0.6, 0.0]])
    # protected vs clean: q0 = e3 scores 0 with e1, e2 and 0.8 with d0 -> rank 1 (d0 only);
    # q1 = e1 vs e0, e2 = 0, d0 = 0.6 -> rank 1; q2 has no face -> rank N = 2
    assert gallery_ranks(protected, clean, distractors).tolist() == [1, 1, 2]
    # clean vs protected gallery: q0 = e0 vs enrolled {e1} (photo 2 not enrolled) = 0, d1 = 0.8
    # -> 1; q1 = e1 vs {e3} = 0, d0 = 0.6 -> 1; q2 = e2 vs {e3, e1} = 0, d1 = 0.6 -> 1
    assert gallery_ranks(clean, protected, distractors).tolist() == [1, 1, 1]
    # protected vs protected: q0 = e3 vs {e1} = 0, d0 = 0.8 -> 1; q1 = e1 vs {e3} = 0 -> 1 (d0);
    # q2 no face -> 2
    assert gallery_ranks(protected, protected, distractors).tolist() == [1, 1, 2]
    # a query whose only other gallery photo has no face: the person is found nowhere
    two = torch.stack([e[0], torch.full((4,), NAN)])
    # (q1 = e1 vs enrolled e0 = 0, d0 = 0.6 -> 1)
    assert gallery_ranks(e[:2], two, distractors).tolist() == [2, 1]
    # ties count for the person, as in identity_ranks
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert gallery_ranks(same, same, same[:1]).tolist() == [0, 0]


def test_gallery_ranks_equal_identity_ranks_without_missing_faces():
    gen = torch.Generator().manual_seed(0)
    center = torch.randn(1, 16, generator=gen)                  # one person, five photos
    clean = F.normalize(center + 0.8 * torch.randn(5, 16, generator=gen))
    queries = F.normalize(center + 0.8 * torch.randn(5, 16, generator=gen))
    distractors = F.normalize(torch.randn(300, 16, generator=gen))
    ranks = gallery_ranks(queries, clean, distractors)
    assert ranks.tolist() == identity_ranks(queries, clean, distractors).tolist()
    assert ranks.max() > 0 and ranks.min() == 0                # the test sees both outcomes


# ------------------------------------------------------------------------------- verification


def test_far_threshold_on_known_scores():
    scores = np.random.default_rng(0).permutation(np.arange(1000) / 1000)   # 0.000 .. 0.999
    t2, t3 = far_threshold(scores, 1e-2), far_threshold(scores, 1e-3)
    assert t2 == pytest.approx(0.989) and t3 == pytest.approx(0.998)
    assert (scores > t2).sum() == 10 and (scores > t3).sum() == 1      # exactly FAR * M accepted
    assert far_threshold(scores, 1e-4) == pytest.approx(0.999)         # FAR * M < 1: none
    ties = np.array([0.1] * 90 + [0.7] * 10)
    assert far_threshold(ties, 0.05) == 0.7                            # never above the target
    assert (ties > far_threshold(ties, 0.05)).mean() == 0.0
    assert far_threshold(ties, 0.1) == 0.1 and (ties > 0.1).mean() == 0.1
    with pytest.raises(ValueError, match="far"):
        far_threshold(scores, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        far_threshold(np.array([0.1, NAN]), 0.5)


def test_impostor_genuine_and_rejection():
    feats = torch.tensor([[1.0, 0.0], [0.6, 0.8], [NAN, NAN], [0.0, 1.0]])
    assert sorted(impostor_scores(feats).round(6).tolist()) == [0.0, 0.6, 0.8]   # NaN row left out
    queries = torch.tensor([[1.0, 0.0], [NAN, NAN], [0.0, 1.0]])
    enrolled = torch.tensor([[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    scores = genuine_scores(queries, enrolled)       # (0,1) (0,2) (1,0) (1,2) (2,0) (2,1)
    np.testing.assert_allclose(scores, [0.6, 1.0, NAN, NAN, 1.0, 0.8])
    assert rejection_rate(scores, 0.85) == pytest.approx(4 / 6)   # 0.6, 0.8, no face twice
    assert rejection_rate(scores, 0.5) == pytest.approx(2 / 6)
    assert rejection_rate(np.array([0.5, 0.7]), 0.5) == 0.5       # at the threshold: rejected


def _record(ranks: dict[str, list[int]], protected: list[float | None],
            clean: list[float | None]) -> dict:
    return {"conditions": {"c": {"ranks": ranks, "undetected": dict.fromkeys(ranks, 0)}},
            "verification": {"r": {"protected": protected, "clean": clean}}}


def test_summary_rows_by_hand():
    records = [_record({"r": [0, 1, 5], "s": [0, 0, 0]}, [0.2, 0.9, None, 0.95], [0.9] * 4),
               _record({"r": [3, 3, 3], "s": [0, 0, 2]}, [0.99] * 4, [0.95, 0.5, 0.99, 0.99])]
    row = psr_row(records, "c", ["r", "s"], n_boot=200, seed=0)
    assert row["recognizers"]["r"]["psr@1"] == pytest.approx(5 / 6)
    assert row["recognizers"]["s"]["psr@1"] == pytest.approx(1 / 6)
    assert row["mean"]["psr@1"] == pytest.approx(0.5)
    low, high = row["mean"]["ci@1"]
    assert low <= 0.5 <= high and low >= 1 / 3 - 1e-9 and high <= 2 / 3 + 1e-9
    thresholds = {"r": {"0.01": {"threshold": 0.92, "far": 0.01}}}
    ver = verification_summary(records, ["r"], thresholds, n_boot=200, seed=0)["0.01"]
    # protected: 0.2, 0.9, no face rejected of 8 pairs; clean: 0.9 x 4, 0.5 rejected of 8
    assert ver["recognizers"]["r"]["protection_rate"] == pytest.approx(3 / 8)
    assert ver["recognizers"]["r"]["clean_frr"] == pytest.approx(5 / 8)
    assert ver["mean"]["protection_rate"] == pytest.approx(3 / 8)
    assert ver["recognizers"]["r"]["pairs"] == 8


# ------------------------------------------------------------------------------- mask estimation


@pytest.fixture(scope="module")
def powell_frames(mtcnn, one_torch_thread) -> torch.Tensor:
    """(13, 3, 224, 224) aligned central faces of Colin_Powell_0001 .. 0013."""
    from evaluation.protocol.lfw import central_faces, load_rgb

    faces = central_faces([load_rgb(p) for p in lfw_photos("Colin_Powell", 13)], mtcnn)
    assert all(f is not None for f in faces)
    return torch.stack([f.frame for f in faces])


def _blob_mask(eps: float = 8.0) -> torch.Tensor:
    """(3, 224, 224) +/-eps sign pattern of Gaussian-smoothed noise (sigma 2 px), feathered."""
    from cloak.faces.align import feather_weight

    noise = np.random.default_rng(0).standard_normal((3, 224, 224))
    signs = torch.from_numpy(np.sign(gaussian_filter(noise, (0, 2, 2)))).float()
    return signs * eps * feather_weight(24.0)


def test_estimation_recovers_a_known_mask(powell_frames):
    import attackers

    mask = _blob_mask()
    protected = (powell_frames + mask).clamp(0, 255)
    sample, probes, clean_probes = protected[:10], protected[10:], powell_frames[10:]
    sface = attackers.load("sface", reference=True)
    clean_feats = sface.embed(clean_probes)
    before = float((sface.embed(probes) * clean_feats).sum(1).mean())
    assert before < 0.92                                        # the mask moves the features
    for denoiser in DENOISERS:
        estimate = estimate_mask(sample, denoiser)
        assert estimate.shape == (3, 224, 224)
        assert mask_correlation(estimate, mask) > 0.5, denoiser
        # the control: from clean photos, the estimate knows nothing of the mask
        assert abs(mask_correlation(estimate_mask(powell_frames[:10], denoiser), mask)) < 0.05
        attacked = subtract_mask(probes, estimate)
        assert float(attacked.min()) >= 0 and float(attacked.max()) <= 255
        after = float((sface.embed(attacked) * clean_feats).sum(1).mean())
        assert after > before + 0.01, denoiser                  # back towards the clean face


def test_denoisers_and_errors():
    flat = torch.full((2, 3, 32, 32), 90.0)
    for name in DENOISERS:
        torch.testing.assert_close(denoise(flat, name), flat)    # a flat frame has no residual
        assert float(estimate_mask(flat, name).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="unknown denoiser 'mean3'"):
        denoise(flat, "mean3")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        denoise(flat[0], "median9")
    with pytest.raises(ValueError, match="does not fit"):
        subtract_mask(flat, torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="constant"):
        mask_correlation(torch.zeros(3), torch.ones(3))
    line, double = torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])
    assert mask_correlation(line, double) == pytest.approx(1)
    assert mask_correlation(line, -double) == pytest.approx(-1)


# ------------------------------------------------------------------------------- re-detection


def test_jitter_condition_on_a_real_photo(mtcnn, one_torch_thread):
    from evaluation.protocol.lfw import load_rgb

    photos = [load_rgb(p) for p in lfw_photos("Serena_Williams", 2)]
    offsets = jitter_offsets("Serena_Williams", 2, px=2.0, seed=0)
    assert offsets.shape == (2, 5, 2) and float(offsets.abs().max()) <= 2.0
    torch.testing.assert_close(offsets, jitter_offsets("Serena_Williams", 2, px=2.0, seed=0))
    assert not torch.equal(offsets, jitter_offsets("Colin_Powell", 2, px=2.0, seed=0))
    none = frames_after(photos, "none", mtcnn)
    still = frames_after(photos, "jitter", mtcnn, 0 * offsets)
    moved = frames_after(photos, "jitter", mtcnn, offsets)
    for a, b, c in zip(none, still, moved, strict=True):
        torch.testing.assert_close(a, b)                        # zero jitter = plain re-alignment
        assert 1.0 < float((a - c).abs().mean()) < 30.0         # a few pixels' shift, same face
    with pytest.raises(ValueError, match="offsets"):
        frames_after(photos, "jitter", mtcnn)


# ------------------------------------------------------------------------------- stores, settings


@pytest.mark.data
def test_stores_keys_and_record_resume(tmp_path):
    lfw = shared_data("lfw")
    files = sorted((lfw / "distractors").glob("*.jpg"))[:3]
    base = RobustnessSettings(BenchmarkSettings(lfw=lfw, loo="one", cache_dir=tmp_path))
    folds = base.opom.fold_plan()
    runs, masks = stores(base, folds, files)
    assert runs.folder.parent == tmp_path / "robustness" / "runs"
    assert masks.folder.parent == tmp_path / "masks"
    same_runs, same_masks = stores(replace(base, fars=(0.1,), opom=replace(
        base.opom, limit=2, n_boot=10)), folds, files)
    assert (same_runs.folder, same_masks.folder) == (runs.folder, masks.folder)
    # other conditions: new records, the same masks; other folds: the same masks too
    fewer = replace(base, transforms=("none", "jpeg75"))
    assert stores(fewer, folds, files)[0].folder != runs.folder
    assert stores(fewer, folds, files)[1].folder == masks.folder
    two = replace(base, opom=replace(base.opom, loo="two"))
    assert stores(two, two.opom.fold_plan(), files)[1].folder == masks.folder
    # other optimiser settings: new masks
    steps = replace(base, opom=replace(base.opom, steps=3))
    assert stores(steps, folds, files)[1].folder != masks.folder
    # a stored record comes back as written (what a rerun resumes from)
    record = {"person": "x", "conditions": {"protected/none": {"ranks": {"sface": [0, 4]}}},
              "seconds": 1.5}
    runs.save("x", record)
    again, _ = stores(base, folds, files)
    assert again.load("x") == json.loads(json.dumps(record)) and again.reused == 1
    assert again.load("y") is None


def test_settings_are_checked():
    with pytest.raises(ValueError, match="transforms must include 'none'.*'jpeg96'"):
        RobustnessSettings(transforms=("none", "jpeg96")).check()
    with pytest.raises(ValueError, match=r"ks must lie in \[1, n_train = 10\]"):
        RobustnessSettings(ks=(2, 11)).check()
    with pytest.raises(ValueError, match="unknown or no denoisers"):
        RobustnessSettings(denoisers=("median3",)).check()
    with pytest.raises(ValueError, match="fars"):
        RobustnessSettings(fars=(0.0,)).check()
    RobustnessSettings().check()

"""The OPOM protocol: splits, galleries, ranks, PSR and bootstrap against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.protocol.ranks import (
    bootstrap_interval,
    gallery_for_probe,
    identity_ranks,
    outside_ranks,
    person_generator,
    psr,
    psr_table,
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


def test_outside_ranks_search_every_genuine_row():
    genuine = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    distractors = torch.tensor([[0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    nan = float("nan")
    queries = torch.tensor([[0.6, 0.8], [-1.0, 0.0], [nan, nan]])
    # query 0: best genuine 0.8; distractors 1.0 (above), 0.8 (a tie: the person's) -> 1
    # query 1: best genuine 0.0; distractors -0.6, 0.0 (a tie), 1.0 (above) -> 1; no face -> N
    assert outside_ranks(queries, genuine, distractors).tolist() == [1, 1, 3]
    # with the probe's own row left out, it is identity_ranks
    rng = torch.Generator().manual_seed(0)
    clean = torch.nn.functional.normalize(torch.randn(5, 8, generator=rng), dim=1)
    others = torch.nn.functional.normalize(torch.randn(40, 8, generator=rng), dim=1)
    queries = torch.nn.functional.normalize(clean + 0.8 * torch.randn(5, 8, generator=rng), dim=1)
    expected = identity_ranks(queries, clean, others).tolist()
    got = [int(outside_ranks(queries[i:i + 1], torch.cat([clean[:i], clean[i + 1:]]), others))
           for i in range(5)]
    assert got == expected


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


def test_psr_table_by_hand():
    ranks = {"r": np.array([[0, 1, 5], [3, 3, 3]]), "s": np.array([[0, 0, 0], [0, 0, 2]])}
    per, mean = psr_table(ranks, (1, 5), n_boot=200, seed=0)
    assert per["r"]["psr@1"] == pytest.approx(5 / 6) and per["r"]["psr@5"] == pytest.approx(1 / 6)
    assert per["s"]["psr@1"] == pytest.approx(1 / 6) and per["s"]["psr@5"] == 0.0
    assert mean["psr@1"] == pytest.approx(0.5)
    assert list(per["r"]) == ["psr@1", "ci@1", "psr@5", "ci@5"]
    assert list(mean) == ["psr@1", "ci@1", "psr@5", "ci@5"]
    low, high = mean["ci@1"]
    assert low <= 0.5 <= high
    assert psr_table(ranks, (1,), n_boot=200, seed=0)[1]["ci@1"] == mean["ci@1"]


def test_person_generator_is_seeded_per_person():
    draw = [torch.rand(3, generator=person_generator(p, s)) for p, s in
            (("Ada", 0), ("Ada", 0), ("Bob", 0), ("Ada", 1))]
    torch.testing.assert_close(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2]) and not torch.equal(draw[0], draw[3])

"""The objective's optional terms (anti-linkage, anchor) against direct computations, random
views of a training face, then the terms on real LFW faces with a real surrogate (dlib-resnet):
anti-linkage lowers the pairwise similarity of the protected training photos, views and a
one-photo enrolment learn, and a mask file that predates the terms still matches its settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import lfw_aligned, lfw_photos

from cloak.faces.align import to_frame
from cloak.objective import (
    LINKAGE_RIDGE,
    anchor_term,
    feature_gradient,
    linkage_term,
    subspace_term,
)
from cloak.opom import (
    MIN_VIEWS,
    TERMS,
    TERMS_OFF,
    OpomConfig,
    TrainingFace,
    learn_mask,
    protected_frames,
    refine_mask,
    training_face,
    with_terms,
)
from cloak.views import RandomViews, mirror_matrix

PERSON = "Colin_Powell"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unit(rows: int, dim: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)),
                       dim=1)


# ------------------------------------------------------------------------------- known features


def test_linkage_term_against_direct_computation():
    z = unit(5, 16)
    gram = z.double().numpy() @ z.double().numpy().T
    sign, logdet = np.linalg.slogdet(gram + LINKAGE_RIDGE * np.eye(5))
    assert sign > 0
    assert float(linkage_term(z)) == pytest.approx(logdet / 5, rel=1e-5)
    assert float(linkage_term(torch.eye(4, 8))) == pytest.approx(np.log(1 + LINKAGE_RIDGE))
    alike = F.normalize(z[:1] + 0.05 * unit(5, 16, seed=1), dim=1)   # five near-copies
    assert float(linkage_term(alike)) < float(linkage_term(z)) - 1.0


def test_linkage_term_exception():
    with pytest.raises(ValueError, match="N >= 2"):
        linkage_term(unit(1, 8))
    with pytest.raises(ValueError, match="ridge"):
        linkage_term(unit(3, 8), ridge=0.0)


def test_anchor_term_against_direct_computation():
    z, anchor = unit(4, 8), unit(1, 8, seed=3)[0]
    expected = np.mean([float(torch.dot(row, anchor)) for row in z])
    assert float(anchor_term(z, anchor)) == pytest.approx(expected, abs=1e-6)
    assert float(anchor_term(anchor[None].repeat(3, 1), anchor)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not fit"):
        anchor_term(z, unit(1, 9)[0])


def test_feature_gradient_combines_terms_at_the_subspace_scale():
    z, clean, anchor = unit(6, 16), unit(4, 16, seed=1), unit(1, 16, seed=2)[0]
    leaf = z.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(subspace_term(leaf, clean, "center"), leaf)
    v, value = feature_gradient(z, clean, "center")
    torch.testing.assert_close(v, plain)                    # weights 0: OPOM's gradient exactly
    assert value == pytest.approx(float(subspace_term(z, clean, "center")))
    (link,) = torch.autograd.grad(linkage_term(leaf), leaf)
    (pull,) = torch.autograd.grad(anchor_term(leaf, anchor), leaf)
    v, _ = feature_gradient(z, clean, "center", linkage=2.0, anchor=anchor, anchor_weight=0.5)
    norm = plain.norm()
    expected = plain + 2.0 * norm * link / link.norm() + 0.5 * norm * pull / pull.norm()
    torch.testing.assert_close(v, expected)
    one = z[:1].clone().requires_grad_(True)
    (alone,) = torch.autograd.grad(subspace_term(one, clean, "center"), one)
    v, _ = feature_gradient(z[:1], clean, "center", linkage=2.0)     # one photo: no pair
    torch.testing.assert_close(v, alone)


def test_with_terms_and_config_checks():
    shipped = OpomConfig(linkage=2.0, views=True)
    assert with_terms(shipped, []) == OpomConfig()
    assert with_terms(shipped, ["linkage"]) == OpomConfig(linkage=2.0)
    assert with_terms(OpomConfig(), ["views", "linkage"]) == OpomConfig(
        linkage=TERMS["linkage"], views=True)
    assert set(TERMS) == set(TERMS_OFF)
    with pytest.raises(ValueError, match="unknown objective terms"):
        with_terms(shipped, ["gram"])
    with pytest.raises(ValueError, match="linkage weight"):
        OpomConfig(linkage=-1.0)
    with pytest.raises(ValueError, match="anchor weight"):
        OpomConfig(anchor=float("nan"))


# ------------------------------------------------------------------------------- views


def test_mirror_matrix_mirrors_the_frame():
    region = torch.rand(3, 90, 70, generator=torch.Generator().manual_seed(0)) * 255
    a = 224 / 80
    matrix = torch.tensor([[a * 0.96, -a * 0.28, 10.0], [a * 0.28, a * 0.96, -30.0]])
    straight = to_frame(region, matrix[None])[0]
    mirrored = to_frame(region.flip(-1), mirror_matrix(matrix, 70)[None])[0]
    torch.testing.assert_close(mirrored, straight.flip(-1), atol=1e-2, rtol=0)


def test_random_views_are_seeded_and_bounded():
    face = TrainingFace(torch.rand(3, 60, 50, generator=torch.Generator().manual_seed(1)) * 255,
                        torch.tensor([[3.7, 0.0, 5.0], [0.0, 3.7, 2.0]]))
    first = [RandomViews(torch.Generator().manual_seed(4))(face) for _ in range(2)]
    assert torch.equal(first[0].region, first[1].region)
    assert torch.equal(first[0].matrix, first[1].matrix)
    views = RandomViews(torch.Generator().manual_seed(5))
    many = [views(face) for _ in range(20)]
    assert len({round(float(v.matrix[0, 2]), 3) for v in many}) > 10     # they differ
    for view in many:
        assert view.region.shape == face.region.shape
        assert 0 <= float(view.region.min()) and float(view.region.max()) <= 255
        scale = float(torch.linalg.det(view.matrix[:, :2].double())) ** 0.5
        assert scale == pytest.approx(3.7, rel=0.05)                  # jitter stays small
    with pytest.raises(ValueError, match="flip"):
        RandomViews(torch.Generator(), flip=2.0)
    with pytest.raises(ValueError, match="view ranges"):
        RandomViews(torch.Generator(), max_scale=1.5)


# ------------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def faces(mtcnn):
    return [training_face(photo, face) for photo, face in lfw_aligned(PERSON, 6, mtcnn)]


def _pairwise(dlib, faces, delta) -> float:
    with torch.no_grad():
        z = dlib.embed(protected_frames(faces, delta, "photo"))
    sims = z @ z.T
    return float((sims.sum() - sims.diagonal().sum()) / (len(z) * (len(z) - 1)))


def test_linkage_lowers_pairwise_similarity_of_protected_photos(faces, dlib):
    plain = learn_mask(faces, [dlib], OpomConfig(steps=8))
    apart = learn_mask(faces, [dlib], OpomConfig(steps=8, linkage=2.0))
    assert not torch.equal(plain, apart) and apart.abs().max() <= 8.0
    # measured 0.937 -> 0.915 (dlib, 6 photos, 8 steps); clean photos are about 0.95
    assert _pairwise(dlib, faces, apart) < _pairwise(dlib, faces, plain) - 0.008


def test_views_and_one_photo_enrolment_learn(faces, dlib):
    config = OpomConfig(steps=4, views=True, linkage=1.0, seed=3)
    delta = learn_mask(faces[:1], [dlib], config)          # one photo: MIN_VIEWS views a step
    assert MIN_VIEWS > 1 and delta.abs().max() <= 8.0
    assert torch.equal(delta, learn_mask(faces[:1], [dlib], config))          # seeded
    assert not torch.equal(delta, learn_mask(faces[:1], [dlib], OpomConfig(steps=4, seed=3)))
    with torch.no_grad():
        clean = dlib.embed(faces[0].clean_frame()[None])
        protected = dlib.embed(protected_frames(faces[:1], delta, "photo"))
    assert float((clean * protected).sum()) < 0.97          # it moved its own photo away
    # refinement fits the photo as it is: views off, the same as refining a plain config
    refined = refine_mask(faces[1], delta, [dlib], config, steps=2)
    assert torch.equal(refined, refine_mask(faces[1], delta, [dlib],
                                            with_terms(config, ["linkage"]), steps=2))


def test_anchor_term_needs_anchors_and_pulls(faces, dlib):
    with pytest.raises(ValueError, match="anchor feature per surrogate"):
        learn_mask(faces, [dlib], OpomConfig(steps=1, anchor=1.0))
    with torch.no_grad():     # another LFW person as the stranger
        from evaluation.protocol.lfw import load_rgb

        other = [training_face(load_rgb(p), f) for p, f in _stranger()]
        anchor = F.normalize(dlib.embed(other[0].clean_frame()[None])[0], dim=0)
    pulled = learn_mask(faces, [dlib], OpomConfig(steps=6, anchor=2.0), anchors=[anchor])
    plain = learn_mask(faces, [dlib], OpomConfig(steps=6))
    with torch.no_grad():
        to_anchor = [float((dlib.embed(protected_frames(faces, d, "photo")) @ anchor).mean())
                     for d in (plain, pulled)]
    assert to_anchor[1] > to_anchor[0] + 0.01


def _stranger():
    import attackers
    from evaluation.protocol.lfw import central_faces, load_rgb

    path = lfw_photos("Serena_Williams", 1)[0]
    return [(path, central_faces([load_rgb(path)], attackers.load("mtcnn"))[0])]

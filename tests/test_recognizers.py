"""The recognizer contract, checked the same way for every recognizer in the zoo on real faces.

``embed`` takes canonical frames and returns unit rows; each photo's nearest other photo is the
same person; same-person pairs score clearly above different-person pairs. The margins are per
model, from measurements on the ``lfw_faces`` fixture (3 people x 4 LFW photos).
"""

from __future__ import annotations

import pytest
import torch
from recognizer_checks import pair_similarities

import attackers
from evaluation.identification import leave_one_out_rank1

#: (zoo name, reference runtime?) -> smallest accepted gap between the median same-person and
#: the median different-person similarity (measured gap in the comment)
MARGINS = {
    ("facenet", False): 0.5,  # 0.79
    ("dlib-resnet", False): 0.1,  # 0.16: dlib's similarities are bunched near 1
    ("dlib-native", False): 0.1,  # same weights, dlib's runtime
    ("sface", False): 0.4,  # 0.60
    ("sface", True): 0.4,
    ("mobilefacenet", False): 0.5,  # 0.76
    ("mobilefacenet", True): 0.5,
    ("faceres", False): 0.2,  # 0.30
    ("faceres-deep", False): 0.25,  # 0.38
    ("mobileface", False): 0.3,  # 0.47
}


@pytest.mark.parametrize(("name", "reference"), list(MARGINS),
                         ids=[f"{n}{'-reference' if r else ''}" for n, r in MARGINS])
def test_embed_contract(name, reference, lfw_faces):
    model = attackers.load(name, reference=reference)
    frames, labels = lfw_faces
    with torch.no_grad():
        emb = model.embed(frames)
    assert emb.shape == (len(frames), model.dim) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(frames)), atol=1e-5)
    assert leave_one_out_rank1(emb, labels.tolist()) == 1.0
    same, diff = pair_similarities(emb, labels)
    assert same.median() - diff.median() > MARGINS[(name, reference)]


@pytest.mark.parametrize("name", ["facenet", "faceres", "faceres-deep"])
def test_gradients_reach_pixels(name, lfw_frames):
    """Gradients of a similarity reach the canonical-frame pixels, finite and non-zero.

    (dlib-resnet, sface, mobilefacenet and mobileface have their own tests, which also check
    which part of the frame their crop covers.)
    """
    model = attackers.load(name)
    frames = lfw_frames["Colin_Powell"][:2].clone().requires_grad_(True)
    emb = model.embed(frames)
    (emb[0] @ emb[1]).backward()
    grad = frames.grad
    assert torch.isfinite(grad).all()
    assert (grad[0].abs() > 0).float().mean() > 0.5
    assert grad[1].abs().sum() > 0

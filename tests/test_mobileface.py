"""mobileface (TF.js graph -> torch): TensorFlow.js agreement, crop, gradients, channel order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import recorded_crops
from recognizer_checks import assert_gradients_in_centred_crop, pair_similarities

import attackers
from attackers.frame import warp_to_crop
from attackers.recognizers import mobileface
from attackers.recognizers.base import Recognizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "mobileface_reference.json").read_text())


@pytest.fixture(scope="module")
def model() -> mobileface.MobileFace:
    return attackers.load("mobileface")


@pytest.mark.data
def test_smoke(model):
    assert isinstance(model, Recognizer) and not model.training
    assert (model.name, model.crop, model.dim) == ("mobileface", mobileface.CropSpec(112), 256)
    assert model.graph.placeholders == ["data"]
    assert not any(b.requires_grad for b in model.buffers())


@pytest.mark.data
def test_reference_agreement(model):
    """The raw 256-d descriptor matches TensorFlow.js' run of the same files (tests/data JSON)."""
    items = REFERENCE["items"]
    crops = recorded_crops(items, 69, 112)
    with torch.no_grad():
        out = model.forward_crop(crops)
    head = torch.tensor([it["embedding_head"] for it in items])
    norm = torch.tensor([it["embedding_norm"] for it in items])
    emb = torch.nn.functional.normalize(out, dim=1)
    errors = {
        "embedding_head": (out[:, :16] - head).abs().max().item(),
        "embedding_norm": ((out.norm(dim=1) - norm) / norm).abs().max().item(),
        "cosine": (emb @ emb.T - torch.tensor(REFERENCE["cosine"])).abs().max().item(),
    }
    # measured: head 8.3e-6 (values up to about 20), norm 1e-7 (relative), cosine 5e-7
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.data
def test_exception(model):
    """A crop of the wrong size fails with an error naming the expected shape."""
    with pytest.raises(ValueError, match=r"expects shape \(-1, 112, 112, 3\)"):
        model.forward_crop(torch.zeros(1, 3, 224, 224))


def test_gradients_reach_pixels(model, lfw_faces):
    """Gradients reach the frame's centre (inside the ArcFace crop), none reach its corner."""
    assert_gradients_in_centred_crop(model, lfw_faces[0])


def test_cardinality(model, lfw_faces):
    """A batch gives the same features as one face at a time."""
    frames = lfw_faces[0][:3]
    with torch.no_grad():
        batch = model.embed(frames)
        single = torch.cat([model.embed(f[None]) for f in frames])
    assert batch.shape == (3, 256)
    assert (batch - single).abs().max() < 1e-5


def test_channel_order(model, lfw_faces):
    """RGB (the order we feed) separates people better than BGR."""
    crops = warp_to_crop(lfw_faces[0], model.crop)
    gaps = []
    with torch.no_grad():
        for c in (crops, crops.flip(1)):
            same, diff = pair_similarities(F.normalize(model.forward_crop(c), dim=1), lfw_faces[1])
            gaps.append((same.mean() - diff.mean()).item())
    # measured gap of mean same- and different-person similarity: RGB 0.48, BGR 0.39
    assert gaps[0] > gaps[1] + 0.03, gaps

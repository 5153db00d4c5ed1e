"""faceres and faceres-deep (TF.js graphs -> torch): agreement with TensorFlow.js, LFW behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import recorded_crops

import attackers
from attackers.recognizers import faceres
from attackers.recognizers.base import Recognizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceres_reference.json").read_text())
DEEP_REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "faceres_deep_reference.json").read_text())


@pytest.fixture(scope="module")
def model() -> faceres.FaceRes:
    return attackers.load("faceres")


@pytest.fixture(scope="module")
def reference_crops() -> torch.Tensor:
    """The reference photos' central 224x224 crops, (6, 3, 224, 224) in [0, 255]."""
    return recorded_crops(REFERENCE["items"], 13, 224)


@pytest.fixture(scope="module")
def reference_heads(model, reference_crops) -> faceres.FaceResOutput:
    with torch.no_grad():
        return model.heads_crop(reference_crops)


@pytest.fixture(scope="module")
def deep() -> faceres.FaceRes:
    return attackers.load("faceres-deep")


@pytest.mark.data
def test_smoke(model, deep):
    for rec, name in ((model, "faceres"), (deep, "faceres-deep")):
        assert isinstance(rec, Recognizer) and not rec.training
        assert (rec.name, rec.crop, rec.dim) == (name, faceres.CropSpec(224, 0.8), 1024)
        assert rec.graph.placeholders == ["input_1"]
        assert not any(b.requires_grad for b in rec.buffers())


def _reference_errors(out: faceres.FaceResOutput, reference: dict) -> dict[str, float]:
    """Largest differences between our heads and TensorFlow.js' recorded ones."""
    items = reference["items"]
    head = torch.tensor([it["embedding_head"] for it in items])
    norm = torch.tensor([it["embedding_norm"] for it in items])
    male = torch.tensor([it["gender"] for it in items])
    age = torch.tensor([it["age_expectation"] for it in items])
    emb = torch.nn.functional.normalize(out.embedding, dim=1)
    assert out.age_probs.argmax(dim=1).tolist() == [it["age_argmax"] for it in items]
    return {
        "embedding_head": (out.embedding[:, :16] - head).abs().max().item(),
        "embedding_norm": ((out.embedding.norm(dim=1) - norm) / norm).abs().max().item(),
        "gender": (out.male - male).abs().max().item(),
        "cosine": (emb @ emb.T - torch.tensor(reference["cosine"])).abs().max().item(),
        "age_expectation": (out.age - age).abs().max().item(),
    }


@pytest.mark.data
def test_reference_agreement(reference_heads):
    """All three heads match TensorFlow.js' run of the same files (tests/data JSON)."""
    errors = _reference_errors(reference_heads, REFERENCE)
    # measured: head 2.7e-6, norm 4e-7 (relative), gender 1.1e-6, cosine 6e-7, age 3.8e-5 years
    assert max(errors.values()) < 1e-3, errors


@pytest.mark.data
def test_deep_reference_agreement(deep, reference_crops):
    """faceres-deep's three heads match TensorFlow.js' run of its files on the same crops."""
    assert [it["crop_sha256"] for it in DEEP_REFERENCE["items"]] == [
        it["crop_sha256"] for it in REFERENCE["items"]]
    with torch.no_grad():
        errors = _reference_errors(deep.heads_crop(reference_crops), DEEP_REFERENCE)
    # measured: head 1.1e-6, norm 5e-7 (relative), gender 5e-7, cosine 5e-7, age 2.3e-5 years
    assert max(errors.values()) < 1e-3, errors


@pytest.mark.data
def test_same_person_closer_than_different(reference_heads):
    """Reference crops (not aligned): 3 photos of Ariel Sharon, 3 of Colin Powell."""
    emb = torch.nn.functional.normalize(reference_heads.embedding, dim=1)
    sim = emb @ emb.T
    person = torch.tensor([0, 0, 0, 1, 1, 1])
    same = (person[:, None] == person[None]) & ~torch.eye(6, dtype=torch.bool)
    diff = person[:, None] != person[None]
    # measured: same mean 0.66 (min 0.53), different mean 0.48 (max 0.57)
    assert sim[same].mean() - sim[diff].mean() > 0.1


def test_heads_lfw_frames(model, lfw_frames):
    """Gender and age heads on canonical frames: two older men, one young woman."""
    with torch.no_grad():
        out = {p: model.heads(frames) for p, frames in lfw_frames.items()}
    for heads in out.values():
        assert heads.age_probs.shape == (4, 100)
        assert torch.allclose(heads.age_probs.sum(dim=1), torch.ones(4), atol=1e-5)
    # measured mean P(male): Ariel Sharon 0.92, Colin Powell 0.78, Serena Williams 0.18
    assert out["Ariel_Sharon"].male.mean() > 0.7
    assert out["Colin_Powell"].male.mean() > 0.6
    assert out["Serena_Williams"].male.mean() < 0.3
    # measured mean age: Ariel Sharon 62, Colin Powell 52, Serena Williams 31 years
    assert out["Ariel_Sharon"].age.mean() - out["Serena_Williams"].age.mean() > 15


@pytest.mark.data
def test_exception(model):
    """A crop of the wrong size fails with an error naming the expected shape."""
    with pytest.raises(ValueError, match=r"expects shape \(-1, 224, 224, 3\)"):
        model.forward_crop(torch.zeros(1, 3, 112, 112))

"""FaceNet (Keras h5 -> torch): strict conversion, agreement with TensorFlow, behaviour on LFW."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import recorded_crops

import attackers
from attackers import zoo
from attackers.convert.keras_h5 import KerasWeightsError
from attackers.frame import CropSpec
from attackers.recognizers import facenet
from attackers.recognizers.base import Recognizer
from attackers.recognizers.inception_resnet_v1 import InceptionResnetV1

REFERENCE = json.loads((Path(__file__).parent / "data" / "facenet_reference.json").read_text())


@pytest.fixture(scope="module")
def model() -> facenet.FaceNet:
    return attackers.load("facenet")


@pytest.fixture(scope="module")
def h5_path() -> Path:
    return zoo.fetch("facenet")["weights"]


@pytest.fixture(scope="module")
def reference_features(model) -> torch.Tensor:
    """Raw features of the reference photos' central 160x160 crops, (6, 128)."""
    with torch.no_grad():
        return model.forward_crop(recorded_crops(REFERENCE["items"], 45, 160))


@pytest.mark.data
def test_smoke(model):
    assert isinstance(model, Recognizer) and not model.training
    assert (model.name, model.crop, model.dim) == ("facenet", CropSpec(160, 0.8), 128)
    n_params = sum(p.numel() for p in model.parameters())
    # the h5's 22,808,144 weights minus its 28,832 batch-norm moving means and variances (folded)
    assert n_params == 22_779_312


@pytest.mark.data
def test_reference_agreement(reference_features):
    """Raw bottleneck features match TensorFlow's run of the same h5 (tests/data JSON)."""
    want = torch.tensor([item["embedding"] for item in REFERENCE["items"]])
    got = reference_features
    assert got.shape == want.shape == (6, 128)
    assert (got - want).abs().max() < 1e-4  # measured 7.3e-6 (recorded values are rounded 1e-5)
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=1)
    assert cosine.min() > 1 - 1e-6


@pytest.mark.data
def test_same_person_closer_than_different(reference_features):
    """Reference crops: 3 photos of Ariel Sharon, 3 of Colin Powell."""
    emb = torch.nn.functional.normalize(reference_features, dim=1)
    sim = emb @ emb.T
    person = torch.tensor([0, 0, 0, 1, 1, 1])
    same = (person[:, None] == person[None]) & ~torch.eye(6, dtype=torch.bool)
    diff = person[:, None] != person[None]
    # measured: same >= 0.71, different <= 0.14
    assert sim[same].min() > 0.55
    assert sim[diff].max() < 0.3


def test_standardize():
    x = torch.rand(3, 3, 160, 160) * 255
    y = facenet.standardize(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std(dim=(1, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(facenet.standardize(x / 255), y, atol=1e-4)
    flat = facenet.standardize(torch.full((1, 3, 4, 4), 7.0))
    assert torch.equal(flat, torch.zeros_like(flat))


@pytest.mark.data
def test_conversion_matches_architecture(h5_path):
    state = facenet.convert_keras_h5(h5_path)
    expected = InceptionResnetV1().state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k].shape for k in state)
    assert all(torch.isfinite(v).all() for v in state.values())


def _edited_copy(h5_path: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "edited.h5"
    shutil.copyfile(h5_path, path)
    with h5py.File(path, "r+") as fh:
        edit(fh)
    return path


@pytest.mark.data
def test_exception(h5_path, tmp_path):
    """Wrong files, graph settings or spare weights give a KerasWeightsError naming the cause."""
    not_h5 = tmp_path / "not.h5"
    not_h5.write_bytes(b"not an h5 file")
    with pytest.raises(KerasWeightsError, match="not a readable Keras h5"):
        facenet.convert_keras_h5(not_h5)

    def wrong_scale(fh):
        config = json.loads(fh.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["name"] == "lambda_7":
                layer["config"]["arguments"]["scale"] = 0.5
        fh.attrs["model_config"] = json.dumps(config)

    with pytest.raises(KerasWeightsError, match="'lambda_7': scale 0.5"):
        facenet.convert_keras_h5(_edited_copy(h5_path, tmp_path, wrong_scale))

    def spare_weight(fh):
        group = fh["model_weights"]["Dropout"]
        group.create_dataset("Dropout/extra:0", data=np.zeros(3, np.float32))
        group.attrs["weight_names"] = np.array([b"Dropout/extra:0"])

    with pytest.raises(KerasWeightsError, match=r"1 weights not used: \['Dropout/extra'\]"):
        facenet.convert_keras_h5(_edited_copy(h5_path, tmp_path, spare_weight))


@pytest.mark.data
def test_converted_cache(h5_path, tmp_path, monkeypatch):
    """The safetensors cache is written once, reused, and replaced when stale."""
    cached = tmp_path / "facenet-v1.safetensors"
    monkeypatch.setattr(zoo, "converted_path", lambda name, tag: cached)
    first = facenet.load({"weights": h5_path})
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    facenet.load({"weights": h5_path})
    assert cached.stat().st_mtime_ns == stamp

    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, cached, metadata={"source_sha256": "stale"})
    stale = facenet.load({"weights": h5_path})
    cached.write_bytes(b"truncated")
    broken = facenet.load({"weights": h5_path})
    for model in (stale, broken):
        for a, b in zip(first.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.equal(a, b)

"""faceres (TF.js graph -> torch): strict loading, agreement with TensorFlow.js, LFW behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import recorded_crops

import attackers
from attackers import zoo
from attackers.convert import tfjs_torch
from attackers.recognizers import faceres
from attackers.recognizers.base import Recognizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceres_reference.json").read_text())


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return zoo.fetch("faceres")


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


@pytest.mark.data
def test_smoke(model):
    assert isinstance(model, Recognizer) and not model.training
    assert (model.name, model.crop, model.dim) == ("faceres", faceres.CropSpec(224, 0.8), 1024)
    assert model.graph.placeholders == ["input_1"]
    assert not any(b.requires_grad for b in model.buffers())


@pytest.mark.data
def test_reference_agreement(reference_heads):
    """All three heads match TensorFlow.js' run of the same files (tests/data JSON)."""
    items = REFERENCE["items"]
    out = reference_heads
    head = torch.tensor([it["embedding_head"] for it in items])
    norm = torch.tensor([it["embedding_norm"] for it in items])
    male = torch.tensor([it["gender"] for it in items])
    age = torch.tensor([it["age_expectation"] for it in items])
    emb = torch.nn.functional.normalize(out.embedding, dim=1)
    errors = {
        "embedding_head": (out.embedding[:, :16] - head).abs().max().item(),
        "embedding_norm": ((out.embedding.norm(dim=1) - norm) / norm).abs().max().item(),
        "gender": (out.male - male).abs().max().item(),
        "cosine": (emb @ emb.T - torch.tensor(REFERENCE["cosine"])).abs().max().item(),
        "age_expectation": (out.age - age).abs().max().item(),
    }
    # measured: head 2.7e-6, norm 4e-7 (relative), gender 1.1e-6, cosine 6e-7, age 3.8e-5 years
    assert max(errors.values()) < 1e-3, errors
    assert out.age_probs.argmax(dim=1).tolist() == [it["age_argmax"] for it in items]


@pytest.mark.data
def test_fold_matches_unfolded(files, model, reference_crops):
    """Folding batch norms and relu6 into the convolutions changes rounding only."""
    plain = tfjs_torch.load_graph_model(files["graph"], [files["weights"]], fold=False)
    assert len(plain.nodes) > 3 * len(model.graph.nodes)
    with torch.no_grad():
        want = plain.run({"input_1": reference_crops[:2].permute(0, 2, 3, 1)},
                         ["global_pooling/Mean"])[0]
        got = model.forward_crop(reference_crops[:2])
    assert (got - want).abs().max() < 1e-4  # measured 2.4e-6
    with pytest.raises(KeyError, match="fold=False"):
        model.graph.run({"input_1": reference_crops[:1]}, ["conv1_relu/Relu"], channels_first=True)
    assert plain.run({"input_1": reference_crops[:1].permute(0, 2, 3, 1)},
                     ["conv1_relu/Relu"])[0].shape == (1, 112, 112, 32)


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
def test_channels_last_input_agrees(model, reference_crops):
    """NHWC feeds and NCHW feeds (``channels_first``) give the same outputs."""
    with torch.no_grad():
        nhwc = model.graph.run({"input_1": reference_crops[:1].permute(0, 2, 3, 1)},
                               ["global_pooling/Mean", "age_pred/Softmax:0"])
        nchw = model.graph.run({"input_1": reference_crops[:1]},
                               ["global_pooling/Mean", "age_pred/Softmax:0"], channels_first=True)
    for a, b in zip(nhwc, nchw, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_same_padding():
    """TF SAME padding: the odd pixel goes after (stride 2 on even sizes pads bottom/right)."""
    assert tfjs_torch._same_pad(224, 3, 2, 1) == (0, 1)
    assert tfjs_torch._same_pad(225, 3, 2, 1) == (1, 1)
    assert tfjs_torch._same_pad(112, 3, 1, 1) == (1, 1)
    assert tfjs_torch._same_pad(7, 1, 1, 1) == (0, 0)
    assert tfjs_torch._same_pad(10, 3, 1, 2) == (2, 2)


def test_decode_weights():
    """float32 / int32 read as is; float16 upcast exactly; uint8 through scale and min."""
    half = np.array([0.1, -2.5, 65504.0], dtype=np.float16)
    data = (np.array([1.5, -3.0], np.float32).tobytes() + np.array([7], np.int32).tobytes()
            + half.tobytes() + np.array([0, 2, 255], np.uint8).tobytes())
    specs = [
        {"name": "f", "shape": [2], "dtype": "float32"},
        {"name": "i", "shape": [], "dtype": "int32"},
        {"name": "h", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "q", "shape": [1, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
    ]
    out = tfjs_torch.decode_weights(specs, data, "test.json")
    assert out["f"].tolist() == [1.5, -3.0] and out["i"].dtype == torch.int32
    assert out["h"].dtype == torch.float32 and out["h"].tolist() == half.astype(np.float32).tolist()
    assert out["q"].tolist() == [[-1.0, 0.0, 126.5]]
    with pytest.raises(tfjs_torch.TFJSFormatError, match="test.json: manifest describes 21 bytes"):
        tfjs_torch.decode_weights(specs, data + b"\0", "test.json")
    with pytest.raises(tfjs_torch.TFJSFormatError, match="unsupported dtype 'string'"):
        tfjs_torch.decode_weights([{"name": "s", "shape": [1], "dtype": "string"}], data, "t")


def _edited_graph(files: dict[str, Path], tmp_path: Path, edit) -> Path:
    meta = json.loads(files["graph"].read_text())
    edit(meta)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.data
def test_exception(files, model, tmp_path):
    """Unsupported ops, bad files and bad inputs fail with errors naming the cause."""
    def unknown_op(meta):
        next(n for n in meta["modelTopology"]["node"] if n["op"] == "Sigmoid")["op"] = "Erf"

    with pytest.raises(tfjs_torch.UnsupportedOpError, match="unsupported TF op 'Erf'"):
        tfjs_torch.load_graph_model(_edited_graph(files, tmp_path, unknown_op), [files["weights"]])

    def nchw_conv(meta):
        node = next(n for n in meta["modelTopology"]["node"] if n["op"] == "Conv2D")
        node["attr"]["data_format"] = {"s": "TkNIVw=="}  # NCHW

    with pytest.raises(tfjs_torch.UnsupportedOpError, match="data_format 'NCHW'"):
        tfjs_torch.load_graph_model(_edited_graph(files, tmp_path, nchw_conv), [files["weights"]])

    def layers_model(meta):
        meta["format"] = "layers-model"

    with pytest.raises(tfjs_torch.TFJSFormatError, match="expected 'graph-model'"):
        tfjs_torch.load_graph_model(_edited_graph(files, tmp_path, layers_model),
                                    [files["weights"]])

    short = tmp_path / "short.bin"
    short.write_bytes(files["weights"].read_bytes()[:-2])
    with pytest.raises(tfjs_torch.TFJSFormatError, match="weight shards end inside"):
        tfjs_torch.load_graph_model(files["graph"], [short])
    with pytest.raises(tfjs_torch.TFJSFormatError, match="lists 1 weight shards, got 2"):
        tfjs_torch.load_graph_model(files["graph"], [files["weights"], short])

    with pytest.raises(ValueError, match=r"expects shape \(-1, 224, 224, 3\)"):
        model.forward_crop(torch.zeros(1, 3, 112, 112))
    with pytest.raises(ValueError, match="no value fed for input 'input_1'"):
        model.graph.run({}, ["global_pooling/Mean"])
    with pytest.raises(KeyError, match="no node named 'nope'"):
        model.graph.run({"input_1": torch.zeros(1, 224, 224, 3)}, ["nope"])

"""SFace and MobileFaceNet: the torch ports of the ONNX files against onnxruntime, on real faces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from recognizer_checks import assert_gradients_in_centred_crop, pair_similarities

import attackers
from attackers.convert.onnx_torch import OnnxConversionError, OnnxGraph, UnsupportedOnnxOpError
from attackers.frame import CropSpec, warp_to_crop
from attackers.recognizers.base import BlackBoxRecognizer
from attackers.recognizers.onnx_models import OnnxRecognizer

MODELS = {"sface": 128, "mobilefacenet": 512}


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request) -> tuple[OnnxRecognizer, BlackBoxRecognizer]:
    """(torch port, onnxruntime reference) of one model."""
    return attackers.load(request.param), attackers.load(request.param, reference=True)


@pytest.mark.data
def test_smoke(pair):
    model, reference = pair
    assert model.crop == CropSpec(112, 1.0) and model.dim == MODELS[model.name]
    assert model.differentiable and not reference.differentiable


def test_matches_onnxruntime(pair, lfw_faces):
    """Same crops, raw and normalised features within 1e-4 of onnxruntime."""
    model, reference = pair
    crops = warp_to_crop(lfw_faces[0], model.crop)
    with torch.no_grad():
        raw = model.forward_crop(crops)
    want = reference.forward_crop(crops)
    assert want.abs().max() > 0.1  # real features, not zeros
    assert (raw - want).abs().max() < 1e-4
    assert (F.normalize(raw, dim=1) - F.normalize(want, dim=1)).abs().max() < 1e-4
    frames = lfw_faces[0]
    assert torch.allclose(model.embed(frames).detach(), reference.embed(frames), atol=1e-4)


def test_cardinality(pair, lfw_faces):
    """Any batch size works, also for MobileFaceNet whose file fixes batch 1."""
    model, _ = pair
    frames = lfw_faces[0][:3]
    with torch.no_grad():
        batch = model.embed(frames)
        single = torch.cat([model.embed(f[None]) for f in frames])
    assert batch.shape == (3, model.dim)
    assert (batch - single).abs().max() < 1e-5


def test_channel_order(pair, lfw_faces):
    """The chosen channel order separates people better than the reversed one."""
    model, _ = pair
    spec = model.spec
    flipped = OnnxRecognizer(
        replace(spec, preprocess=replace(spec.preprocess, bgr=not spec.preprocess.bgr)),
        model.graph)
    with torch.no_grad():
        gaps = []
        for m in (model, flipped):
            same, diff = pair_similarities(m.embed(lfw_faces[0]), lfw_faces[1])
            gaps.append(same.mean() - diff.mean())
    assert gaps[0] > gaps[1] + 0.005


def test_gradients_reach_pixels(pair, lfw_faces):
    assert_gradients_in_centred_crop(pair[0], lfw_faces[0])


def test_reference_has_no_gradient(pair, lfw_faces):
    _, reference = pair
    frames = lfw_faces[0][:1].clone().requires_grad_(True)
    assert not reference.embed(frames).requires_grad


@pytest.mark.data
def test_exception(tmp_path):
    """Unsupported ops and batch-mixing reshapes are refused, naming op and model."""
    path = attackers.zoo.fetch("mobilefacenet")["weights"]
    proto = onnx.load(str(path))
    proto.graph.node[1].op_type = "Erf"
    with pytest.raises(UnsupportedOnnxOpError, match="Erf.*mobilefacenet"):
        OnnxGraph(proto, "mobilefacenet")

    proto = onnx.load(str(path))
    reshape = next(n for n in proto.graph.node if n.op_type == "Reshape")
    shape = next(t for t in proto.graph.initializer if t.name == reshape.input[1])
    shape.CopyFrom(onnx.numpy_helper.from_array(np.array([256, -1], dtype=np.int64), shape.name))
    graph = OnnxGraph(proto, "mobilefacenet")
    with pytest.raises(UnsupportedOnnxOpError, match="batch"):
        graph(torch.zeros(2, 3, 112, 112))

    with pytest.raises(ValueError, match="expects input"):
        OnnxGraph.from_file(path, "mobilefacenet")(torch.zeros(1, 3, 96, 96))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file")
    with pytest.raises(OnnxConversionError, match="bad.onnx: not a readable ONNX model"):
        OnnxGraph.from_file(bad, "x")

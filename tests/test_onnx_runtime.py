"""ONNX files run by onnxruntime (attackers.convert.onnx_runtime), on tiny graphs made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from attackers.convert.onnx_runtime import OnnxRuntimeNet


def _scale_graph(path: Path, batch: int | str) -> Path:
    """``y = x * 2`` on (batch, 3) inputs, with a stale initializer also listed as an input."""
    two = numpy_helper.from_array(np.full((1, 3), 2.0, np.float32), "two")
    stale = numpy_helper.from_array(np.zeros(3, np.float32), "stale")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("stale", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[two, stale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("batch", [1, "N"])
def test_smoke(tmp_path, batch):
    net = OnnxRuntimeNet(_scale_graph(tmp_path / "scale.onnx", batch), threads=1)
    assert net.input_name == "x" and net.batch_one == (batch == 1)
    x = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    out = net(x)
    assert out.dtype == torch.float32 and torch.equal(out, (2 * x).float())
    assert torch.equal(OnnxRuntimeNet(tmp_path / "scale.onnx", optimise=False)(x), out)


def test_exception(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(RuntimeError, match="bad.onnx: onnxruntime cannot load it"):
        OnnxRuntimeNet(bad)

"""TF.js graph models in torch (attackers.convert.tfjs_graph): strict loading and running,
on the faceres graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import recorded_crops

from attackers import zoo
from attackers.convert.tfjs_format import TFJSFormatError, UnsupportedOpError
from attackers.convert.tfjs_graph import GraphModel, load_graph_model

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceres_reference.json").read_text())


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return zoo.fetch("faceres")


@pytest.fixture(scope="module")
def graph(files) -> GraphModel:
    return load_graph_model(files["graph"], [files["weights"]])


@pytest.mark.data
def test_channels_last_input_agrees(graph):
    """NHWC feeds and NCHW feeds (``channels_first``) give the same outputs."""
    crops = recorded_crops(REFERENCE["items"][:1], 13, 224)
    with torch.no_grad():
        nhwc = graph.run({"input_1": crops.permute(0, 2, 3, 1)},
                         ["global_pooling/Mean", "age_pred/Softmax:0"])
        nchw = graph.run({"input_1": crops},
                         ["global_pooling/Mean", "age_pred/Softmax:0"], channels_first=True)
    for a, b in zip(nhwc, nchw, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def _edited_graph(files: dict[str, Path], tmp_path: Path, edit) -> Path:
    meta = json.loads(files["graph"].read_text())
    edit(meta)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.data
def test_exception(files, graph, tmp_path):
    """Unsupported ops, bad files and bad inputs fail with errors naming the cause."""
    def unknown_op(meta):
        next(n for n in meta["modelTopology"]["node"] if n["op"] == "Sigmoid")["op"] = "Erf"

    with pytest.raises(UnsupportedOpError, match="unsupported TF op 'Erf'"):
        load_graph_model(_edited_graph(files, tmp_path, unknown_op), [files["weights"]])

    def nchw_conv(meta):
        node = next(n for n in meta["modelTopology"]["node"] if n["op"] == "Conv2D")
        node["attr"]["data_format"] = {"s": "TkNIVw=="}  # NCHW

    with pytest.raises(UnsupportedOpError, match="data_format 'NCHW'"):
        load_graph_model(_edited_graph(files, tmp_path, nchw_conv), [files["weights"]])

    def layers_model(meta):
        meta["format"] = "layers-model"

    with pytest.raises(TFJSFormatError, match="expected 'graph-model'"):
        load_graph_model(_edited_graph(files, tmp_path, layers_model), [files["weights"]])

    short = tmp_path / "short.bin"
    short.write_bytes(files["weights"].read_bytes()[:-2])
    with pytest.raises(TFJSFormatError, match="weight shards end inside"):
        load_graph_model(files["graph"], [short])
    with pytest.raises(TFJSFormatError, match="lists 1 weight shards, got 2"):
        load_graph_model(files["graph"], [files["weights"], short])

    with pytest.raises(ValueError, match="no value fed for input 'input_1'"):
        graph.run({}, ["global_pooling/Mean"])
    with pytest.raises(KeyError, match="no node named 'nope'"):
        graph.run({"input_1": torch.zeros(1, 224, 224, 3)}, ["nope"])

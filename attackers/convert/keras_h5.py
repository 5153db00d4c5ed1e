"""Keras 2 h5 model files read strictly: layers, graph and weights, each weight used once.

:class:`KerasFile` gives a converter the ``model_config`` graph (a layer's settings, the layer it
feeds) and the stored weights as float32 arrays; a converter takes each weight once, by layer,
name and shape, and :meth:`KerasFile.check_all_used` then proves nothing was left over. Any
mismatch raises :class:`KerasWeightsError` naming the file and the layer.

>>> # kf = KerasFile(Path("facenet_keras_2024.h5")); kf.layer("Bottleneck", "Dense")["units"]
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

__all__ = ["KerasFile", "KerasWeightsError"]


class KerasWeightsError(ValueError):
    """The Keras h5 file does not match the architecture (message names the file and layer)."""


class KerasFile:
    """The layers, graph and weights of a Keras 2 h5 file, with strict use-once bookkeeping.

    Args:
        path: the ``.h5`` file (``model_config`` attribute and ``model_weights`` group).

    Attributes:
        layers: layer name -> its ``model_config`` entry (``class_name``, ``config``, ...).
        consumers: layer name -> names of the layers it feeds.
        weights: layer name -> short weight name (``"kernel"``) -> float32 array.

    Raises:
        KerasWeightsError: the file is not a readable Keras h5 model.
    """

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
        """The error to raise for ``layer``, naming the file, the layer and ``reason``."""
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
        """Raise :class:`KerasWeightsError` if any stored weight was not taken."""
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

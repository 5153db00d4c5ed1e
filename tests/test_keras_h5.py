"""Keras h5 files read strictly (attackers.convert.keras_h5), on a tiny file made here."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from attackers.convert.keras_h5 import KerasFile, KerasWeightsError


def _layer(name: str, cls: str, config: dict, inbound: list[str]) -> dict:
    return {"name": name, "class_name": cls, "config": config,
            "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}


@pytest.fixture
def h5_path(tmp_path):
    """A Dense(2, no bias) -> BatchNormalization(scale=False) model."""
    layers = [_layer("in", "InputLayer", {}, []),
              _layer("dense", "Dense", {"units": 2}, ["in"]),
              _layer("bn", "BatchNormalization",
                     {"scale": False, "center": True, "epsilon": 1e-3}, ["dense"])]
    weights = {"dense": {"dense/kernel:0": np.ones((3, 2), np.float32)},
               "bn": {"bn/beta:0": np.array([1.0, 2.0], np.float32),
                      "bn/moving_mean:0": np.array([0.5, 0.0], np.float32),
                      "bn/moving_variance:0": np.array([3.999, 0.999], np.float32)}}
    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["model_config"] = json.dumps({"config": {"layers": layers}})
        group = fh.create_group("model_weights")
        group.attrs["layer_names"] = np.array([b"in", b"dense", b"bn"])
        group.create_group("in").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, arrays in weights.items():
            sub = group.create_group(layer)
            for name, array in arrays.items():
                sub.create_dataset(name, data=array)
            sub.attrs["weight_names"] = np.array([n.encode() for n in arrays])
    return path


def test_smoke(h5_path):
    kf = KerasFile(h5_path)
    assert kf.consumers["dense"] == ["bn"] and kf.layer("dense", "Dense")["units"] == 2
    assert kf.only_consumer("dense", "BatchNormalization")[0] == "bn"
    assert kf.take("dense", "kernel", (3, 2)).sum() == 6
    scale, shift = kf.batchnorm("bn", 2)
    np.testing.assert_allclose(scale, [0.5, 1.0])
    np.testing.assert_allclose(shift, [0.75, 2.0])
    kf.check_all_used()


def test_exception(h5_path, tmp_path):
    kf = KerasFile(h5_path)
    with pytest.raises(KerasWeightsError, match="'dense': is a Dense, expected Conv2D"):
        kf.layer("dense", "Conv2D")
    with pytest.raises(KerasWeightsError, match="'bn': feeds \\[\\], expected exactly one"):
        kf.only_consumer("bn", "Activation")
    with pytest.raises(KerasWeightsError, match="has shape \\(3, 2\\), expected \\(2, 3\\)"):
        kf.take("dense", "kernel", (2, 3))
    kf.take("dense", "kernel", (3, 2))
    with pytest.raises(KerasWeightsError, match="weight 'kernel' used twice"):
        kf.take("dense", "kernel", (3, 2))
    with pytest.raises(KerasWeightsError, match="3 weights not used"):
        kf.check_all_used()
    not_h5 = tmp_path / "not.h5"
    not_h5.write_bytes(b"not an h5 file")
    with pytest.raises(KerasWeightsError, match="not a readable Keras h5"):
        KerasFile(not_h5)

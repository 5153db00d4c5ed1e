"""Conversions shared by the attribute metrics: tensors and array-likes to numpy, NaN to JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["as_numpy", "as_vector", "json_float"]


def as_numpy(x: Any) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_vector(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D array, or a ValueError naming it."""
    v = as_numpy(x)
    if v.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array (N,), got shape {v.shape}")
    return v.astype(np.float64) if v.dtype.kind == "f" else v



def json_float(x: float) -> float | None:
    """NaN as None (JSON has no NaN), other floats unchanged."""
    return None if math.isnan(x) else float(x)

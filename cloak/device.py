"""Where the torch work of a run happens: ``--device auto|cpu|cuda|mps``.

Every torch model of a run (the surrogates, attribute predictors, MTCNN, the identity
recognizer) is moved to one device (``attackers.load(name, device=...)``), and the optimiser,
the paste path and the video path compute where their models are (:func:`module_device`).
Black boxes on onnxruntime or dlib stay on the CPU. Random draws always come from a seeded CPU
``torch.Generator`` and are moved to the device, so one seed gives the same draws everywhere.

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "DeviceError", "module_device", "resolve_device"]

#: The values of ``--device``; ``auto`` is CUDA when torch sees one, else the CPU.
DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """The device asked for is unknown or not available on this machine (message names it)."""


def resolve_device(name: str) -> torch.device:
    """The torch device that ``--device name`` means on this machine.

    Args:
        name: one of :data:`DEVICES`, or ``cuda:N`` for the N-th CUDA device.

    Returns:
        ``auto``: ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; otherwise the
        device named.

    Raises:
        DeviceError: unknown name, or the device is not available (no CUDA device, no MPS
            backend, or fewer CUDA devices than ``cuda:N`` needs).
    """
    import torch

    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)} "
                          "(or cuda:N)")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA"
            raise DeviceError(f"device {name!r} is not available: torch sees no CUDA device "
                              f"(torch {torch.__version__}, built with {build})")
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} is not available: torch sees "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} is not available: torch sees no MPS (Apple GPU) "
                          "backend")
    return torch.device(name)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU for one without any)."""
    import torch

    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device

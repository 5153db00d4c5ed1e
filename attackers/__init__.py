"""The adversaries a cloak must beat: the model zoo, face recognizers, attribute predictors.

>>> import attackers
>>> [s.name for s in attackers.zoo.list_specs()][:2]
['facenet', 'dlib-resnet']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from attackers import zoo

__all__ = ["load", "zoo"]


def load(name: str, progress: Callable[[str], None] | None = None, *,
         reference: bool = False, device: Any = None) -> Any:
    """Fetch (if needed) and build zoo model ``name``, in eval mode.

    With ``reference=True`` the model's reference runtime (onnxruntime, dlib-bin) is built
    instead, as a black box with the same ``embed``; a ValueError if it has none.

    ``device`` (a ``torch.device`` or its name, e.g. ``"cuda"``) moves a white-box torch model
    there (``model.to(device)``); black boxes (the zoo's ``black-box`` models and every
    reference runtime) stay on the CPU, taking inputs from any device. None keeps the CPU.

    The spec's loader is ``"module:function"``; it is called with the dict of verified file
    paths that :func:`attackers.zoo.fetch` returns and builds the model (torch module or
    black-box runtime wrapper).

    Raises:
        attackers.zoo.UnknownModelError: ``name`` is not in the zoo (message lists valid names).
        attackers.zoo.FetchError: the files could not be fetched or verified.
    """
    spec = zoo.get_spec(name)
    files = zoo.fetch(name, progress=progress)
    target = spec.loader
    if reference:
        if spec.reference is None:
            raise ValueError(f"model {name!r} has no reference runtime")
        target = spec.reference
    module_name, func_name = target.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    model = builder(files)
    if hasattr(model, "eval"):
        model.eval()
    if device is not None and not reference and spec.access == "white-box":
        model.to(device)
    return model

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


def load(name: str, progress: Callable[[str], None] | None = None) -> Any:
    """Fetch (if needed) and build zoo model ``name``, in eval mode.

    The spec's loader is ``"module:function"``; it is called with the dict of verified file
    paths that :func:`attackers.zoo.fetch` returns and builds the model (torch module or
    black-box runtime wrapper).

    Raises:
        attackers.zoo.UnknownModelError: ``name`` is not in the zoo (message lists valid names).
        attackers.zoo.FetchError: the files could not be fetched or verified.
    """
    spec = zoo.get_spec(name)
    files = zoo.fetch(name, progress=progress)
    module_name, func_name = spec.loader.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    model = builder(files)
    if hasattr(model, "eval"):
        model.eval()
    return model

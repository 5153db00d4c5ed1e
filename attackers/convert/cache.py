"""Torch weights converted once from a zoo model's file and cached as safetensors.

The cache file is :func:`attackers.zoo.converted_path` ``(name, tag)``; its metadata records the
sha256 of the model's ``weights`` file it was converted from (``source_sha256``) and that file's
name (``source``). A cache that is unreadable or was made from other weights is converted again
and replaced atomically (a temporary file beside it, then ``os.replace``).

>>> # state = load_converted("facenet", "v1", h5_path, convert_keras_h5)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from attackers import zoo

__all__ = ["load_converted"]


def load_converted(name: str, tag: str, source: Path,
                   convert: Callable[[Path], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Model ``name``'s converted state_dict, from the cache or converted (and cached) now.

    Args:
        name: the zoo model; its ``weights`` artifact is what ``source`` holds.
        tag: the state_dict layout (bump it when the layout changes).
        source: the verified weights file, as :func:`attackers.zoo.fetch` returns it.
        convert: reads ``source`` into a state_dict of float tensors.

    Returns:
        the state_dict (tensor name -> tensor).
    """
    digest = zoo.get_spec(name).artifacts["weights"].sha256
    cached = zoo.converted_path(name, tag)
    if cached.is_file():
        try:
            with safe_open(cached, framework="pt") as fh:
                if (fh.metadata() or {}).get("source_sha256") == digest:
                    return {key: fh.get_tensor(key) for key in fh.keys()}
        except SafetensorError:
            pass  # unreadable cache: convert again and overwrite it
    state = convert(source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".partial", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        save_file(state, partial, metadata={"source_sha256": digest, "source": source.name})
        os.replace(partial, cached)
    finally:
        partial.unlink(missing_ok=True)
    return state

"""Mask files: one person's universal perturbation and the settings that made it.

A mask file is a safetensors file (suggested extension :data:`MASK_SUFFIX`, ``.cloak``) holding
exactly one tensor, ``delta``, and a string metadata header whose values are JSON: the format marker
and version, ``eps``, ``subspace``, ``surrogates``, ``person``, ``seed``, the canonical frame
(``frame_size``, ``frame_scale``), the cloak ``version``, free-form ``settings`` and the ``created``
time. Nothing is ever unpickled: a pickle or ``torch.save`` file is refused by its first bytes.

Personal data (DESIGN section 7): a mask file holds the mask and its settings, never an embedding
or a face crop. :func:`load_mask` refuses files with any tensor besides ``delta``, and ``settings``
values are scalars.

>>> mask = Mask(torch.zeros(3, FRAME_SIZE, FRAME_SIZE), eps=8.0, subspace="convex",
...             surrogates=["facenet", "sface"], person="Ada", seed=0)
>>> # save_mask(mask, "ada.cloak"); load_mask("ada.cloak").eps == 8.0
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _safetensors_bytes

from attackers.frame import FRAME_SCALE, FRAME_SIZE
from cloak.fileio import not_regular, write_bytes_atomic
from cloak.subspace import SUBSPACES

__all__ = ["EPS_TOLERANCE", "FORMAT_VERSION", "MASK_SUFFIX", "Mask", "MaskError", "cloak_version",
           "load_mask", "save_mask"]

#: Suggested file extension of mask files.
MASK_SUFFIX = ".cloak"
#: Version of the file layout written by :func:`save_mask`; :func:`load_mask` reads 1..this.
FORMAT_VERSION = 1
_FORMAT = "cloak-mask"
#: Slack on ``|delta| <= eps`` in pixel levels, for float rounding.
EPS_TOLERANCE = 1e-4
#: Largest safetensors header read when identifying a mask file (a mask's is about 1 KB).
_MAX_HEADER = 1 << 20
#: Largest file taken for a mask (a mask is about 0.6 MB): a larger one is refused unread.
_MAX_FILE = 16 << 20
_METADATA_KEYS = ("eps", "subspace", "surrogates", "person", "seed", "frame_size", "frame_scale",
                  "version", "settings", "created")


class MaskError(ValueError):
    """A mask that cannot be saved or loaded; the message is one line naming the file."""


def cloak_version() -> str:
    """The installed cloak package's version, ``"0+unknown"`` when run from an uninstalled tree."""
    try:
        return _package_version("cloak")
    except PackageNotFoundError:
        return "0+unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Mask:
    """One person's universal perturbation in the canonical face frame.

    Attributes:
        delta: (3, frame_size, frame_size) float32, RGB pixel levels of 0..255, in [-eps, eps].
        eps: L-inf budget in pixel levels (e.g. 8.0).
        subspace: the subspace model it was optimised for (``"center"``, ``"affine"``,
            ``"convex"``).
        surrogates: zoo names of the recognizers it was optimised on.
        person: a label for the person (chosen by the user).
        seed: random seed of the optimisation.
        frame_size: side of the canonical frame in pixels (:data:`attackers.frame.FRAME_SIZE`).
        frame_scale: template scale of the frame (:data:`attackers.frame.FRAME_SCALE`).
        version: cloak version that made it.
        settings: other optimiser settings (steps, mode, ...), scalar values only.
        created: ISO 8601 UTC time of creation.
    """

    delta: torch.Tensor
    eps: float
    subspace: str
    surrogates: list[str]
    person: str
    seed: int
    frame_size: int = FRAME_SIZE
    frame_scale: float = FRAME_SCALE
    version: str = field(default_factory=cloak_version)
    settings: dict[str, str | int | float] = field(default_factory=dict)
    created: str = field(default_factory=_now)

    @property
    def feather(self) -> float:
        """Fade width in frame pixels to paste the mask with (8 for masks that predate it)."""
        value = self.settings.get("feather", 8.0)
        return float(value) if isinstance(value, (int, float)) else 8.0


def _frame_problem(size: Any, scale: Any) -> str | None:
    if size == FRAME_SIZE and scale == FRAME_SCALE:
        return None
    return (f"mask made for a {size} frame at scale {scale}, this version uses a {FRAME_SIZE} "
            f"frame at scale {FRAME_SCALE}")


def _problem(mask: Mask) -> str | None:
    """The first reason ``mask`` is invalid, or None."""
    if (not isinstance(mask.eps, (int, float)) or isinstance(mask.eps, bool)
            or not math.isfinite(mask.eps) or mask.eps <= 0):
        return f"eps must be a positive number of pixel levels, got {mask.eps!r}"
    if mask.subspace not in SUBSPACES:
        return f"unknown subspace {mask.subspace!r} (known: {', '.join(SUBSPACES)})"
    if (not isinstance(mask.surrogates, list) or not mask.surrogates
            or not all(isinstance(s, str) for s in mask.surrogates)):
        return f"surrogates must be a non-empty list of model names, got {mask.surrogates!r}"
    for name in ("person", "version", "created"):
        if not isinstance(getattr(mask, name), str):
            return f"{name} must be a string, got {getattr(mask, name)!r}"
    if not isinstance(mask.seed, int) or isinstance(mask.seed, bool):
        return f"seed must be an integer, got {mask.seed!r}"
    if not isinstance(mask.settings, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float))
            for k, v in mask.settings.items()):
        return "settings must map names to strings or numbers"
    frame = _frame_problem(mask.frame_size, mask.frame_scale)
    if frame:
        return frame
    delta = mask.delta
    if not isinstance(delta, torch.Tensor):
        return f"delta must be a tensor, got {type(delta).__name__}"
    shape = (3, FRAME_SIZE, FRAME_SIZE)
    if tuple(delta.shape) != shape:
        return f"delta has shape {tuple(delta.shape)}, expected {shape}"
    if delta.dtype != torch.float32:
        return f"delta has dtype {str(delta.dtype).removeprefix('torch.')}, expected float32"
    if not torch.isfinite(delta).all():
        return "delta holds NaN or infinite values"
    peak = delta.abs().max().item()
    if peak > mask.eps + EPS_TOLERANCE:
        return f"delta reaches {peak:.4g} pixel levels, beyond its eps of {mask.eps:g}"
    return None


def save_mask(mask: Mask, path: str | os.PathLike[str]) -> Path:
    """Validate ``mask`` and write it to ``path`` atomically (temporary file, then ``os.replace``).

    The file is readable by everyone (mode 0644): it holds no personal data beyond the ``person``
    label. An existing file at ``path`` is replaced.

    Returns:
        the path written.

    Raises:
        MaskError: the mask is invalid (see :func:`load_mask`) or the file cannot be written.
    """
    path = Path(path)
    problem = _problem(mask)
    if problem:
        raise MaskError(f"{path}: not saved: {problem}")
    metadata = {"format": _FORMAT, "format_version": FORMAT_VERSION}
    metadata.update({key: getattr(mask, key) for key in _METADATA_KEYS})
    data = _safetensors_bytes({"delta": mask.delta.detach().cpu().contiguous()},
                              metadata={k: json.dumps(v) for k, v in metadata.items()})
    if not path.parent.is_dir():
        raise MaskError(f"{path}: cannot write: folder {path.parent} does not exist")
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise MaskError(f"{path}: cannot write: {error.strerror or error}") from error
    return path


def _looks_like_safetensors(head: bytes, size: int, read: Any) -> bool:
    """True when the file parses as safetensors: a little-endian u64 header length that fits
    in the file, followed by that many bytes of a JSON object."""
    if len(head) < 8:
        return False
    length = int.from_bytes(head[:8], "little")
    if not 2 <= length <= min(size - 8, _MAX_HEADER):
        return False
    try:
        return isinstance(json.loads(read(length)), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _sniff(path: Path) -> str | None:
    """A reason to refuse ``path``, or None when it parses as a safetensors file.

    The file is first parsed as safetensors (header length bounded by the file size, a JSON
    header); only a file that is not one is then named by its signature (zip, pickle), so a
    mask whose header length happens to start with pickle's marker bytes is still a mask. A file
    over :data:`_MAX_FILE`, or whose header claims more than :data:`_MAX_HEADER`, is refused
    without reading it."""
    try:
        size = path.stat().st_size
        if size > _MAX_FILE:
            return (f"too large to be a mask file ({size / 1e6:.0f} MB; a mask is about "
                    "0.6 MB)")
        with path.open("rb") as file:
            head = file.read(8)
            if _looks_like_safetensors(head, size, file.read):
                return None
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save?), not a mask file; masks are never unpickled"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle file, not a mask file; masks are never unpickled"
    if len(head) < 8:
        return "too short to be a mask file (empty or truncated)"
    return "not a valid safetensors mask file (its header does not parse)"


def _decode(metadata: dict[str, str] | None) -> dict[str, Any]:
    """JSON-decode the header; raises ValueError with the reason."""
    if not metadata or metadata.get("format") != json.dumps(_FORMAT):
        raise ValueError("a safetensors file but not a cloak mask (no cloak-mask format marker)")
    values: dict[str, Any] = {}
    for key in ("format_version", *_METADATA_KEYS):
        if key not in metadata:
            raise ValueError(f"metadata lacks {key!r}")
        try:
            values[key] = json.loads(metadata[key])
        except json.JSONDecodeError as error:
            raise ValueError(f"metadata {key!r} is not valid JSON") from error
    known = values["format_version"]
    if not isinstance(known, int) or not 1 <= known <= FORMAT_VERSION:
        raise ValueError(f"format version {known!r} is unknown to this cloak (reads 1 to "
                         f"{FORMAT_VERSION}); upgrade cloak")
    return values


def load_mask(path: str | os.PathLike[str]) -> Mask:
    """Read and validate a mask file written by :func:`save_mask`.

    Checks, in order: the file exists and is readable; it is not a pickle or zip file; it is a
    valid safetensors file with the cloak-mask marker and a known format version; its frame is the
    current canonical frame; it holds exactly one tensor ``delta`` of shape
    (3, FRAME_SIZE, FRAME_SIZE), dtype float32, finite, with ``|delta| <= eps`` (+
    :data:`EPS_TOLERANCE`); its settings have the documented types.

    Returns:
        the mask; ``delta`` is (3, FRAME_SIZE, FRAME_SIZE) float32 on the CPU.

    Raises:
        MaskError: one line, ``"<path>: <reason>"``.
    """
    path = Path(path)
    problem = not_regular(path) or _sniff(path)
    if problem:
        raise MaskError(f"{path}: {problem}")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata()
            names = sorted(file.keys())
            delta = file.get_tensor("delta") if names == ["delta"] else None
    except (SafetensorError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MaskError(f"{path}: not a valid safetensors mask file ({reason})") from error
    try:
        values = _decode(metadata)
    except ValueError as error:
        raise MaskError(f"{path}: {error}") from error
    frame = _frame_problem(values["frame_size"], values["frame_scale"])
    if frame:
        raise MaskError(f"{path}: {frame}")
    if delta is None:
        raise MaskError(f"{path}: expected exactly one tensor 'delta', found {names}")
    mask = Mask(delta=delta, **{key: values[key] for key in _METADATA_KEYS})
    problem = _problem(mask)
    if problem:
        raise MaskError(f"{path}: {problem}")
    return mask

"""Protecting a person's photos (``cloak protect``) and enrolling a person (``cloak enroll``).

The pipeline, free of any UI (:mod:`cloak.cli` parses options and draws progress; a
:class:`Reporter` receives what happens):

1. find the photos (:func:`~cloak.imageio.iter_photo_paths`); files under the output folder are
   left out, so an output folder inside an input folder is never re-protected;
2. scan each photo: read it, detect faces on a working copy whose longest side is at most
   :data:`DETECT_MAX_SIDE` pixels (landmarks mapped back to full resolution), drop faces narrower
   than ``min_face`` photo pixels, embed each remaining face with
   :data:`~cloak.identity.CLUSTER_MODEL`; embeddings stay in memory and are never written
   (DESIGN section 7);
3. decide whose photos these are (:func:`~cloak.identity.cluster_faces`,
   :func:`~cloak.identity.main_identity`): the person is the group of similar faces present in
   the most photos;
4. learn the person's mask from up to :data:`TRAIN_FACES` of their faces (one per photo, the most
   typical first) with the OPOM optimiser (:mod:`cloak.opom`), or use a given one; a learned mask
   is saved as soon as it exists, so an interrupted run reuses it;
5. write protected copies (:func:`protected_pixels`): the mask is pasted on the person's faces
   only (every face with ``all_faces``), all other pixels are the input's; with ``refine`` each
   face first gets its own copy of the mask refined by a few more steps on that face alone
   (:func:`cloak.opom.refine_mask`: stronger protection, seconds per face on a CPU; the saved
   mask stays the universal one); the copy keeps format,
   size and mode (:func:`~cloak.imageio.write_photo`). A manifest in the output folder
   (:data:`MANIFEST_NAME`) records, per output, the mask's digest and the options, so a rerun
   skips outputs that are already done.

Identity grouping and its calibrated threshold: :mod:`cloak.identity`.

A photo in which none of the person's faces is found is not written (status ``"not-person"``,
with a notice): its faces belong to other people and stay as they are.

Memory: one photo at a time; detection runs on the working copy; the mask is applied to the
window around the faces only, in strips, and 8-bit RGB photos are assembled as uint8. Measured:
``cloak protect`` over ``shared/data/bad_inputs`` (with its 8000x6000 photo) peaks at about
1.0 GB resident, models included; decoding the 48 MP JPEG alone peaks at 0.46 GB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.errors import CloakError
from cloak.fileio import folder_lock, not_regular, write_bytes_atomic
from cloak.identity import CLUSTER_MODEL, cluster_faces, main_identity
from cloak.imageio import FoundFile, Photo, iter_photo_paths, read_photo, write_photo
from cloak.mask import MASK_SUFFIX, Mask, MaskError, load_mask, save_mask
from cloak.opom import (
    DEFAULT_ATTRIBUTE_WEIGHT,
    DEFAULT_FEATHER,
    MODES,
    TERMS_OFF,
    AttributeSurrogate,
    OpomConfig,
    TrainingFace,
    attribute_names,
    learn_mask,
    protect_photo,
    refine_mask,
    training_face,
    with_terms,
)

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.faces import AlignedFace

__all__ = [
    "DETECT_MAX_SIDE",
    "MANIFEST_NAME",
    "Manifest",
    "MIN_FACE",
    "TRAIN_FACES",
    "FileResult",
    "LearnSettings",
    "ProtectOptions",
    "Reporter",
    "Summary",
    "UsageError",
    "default_name",
    "default_output",
    "enroll",
    "frames_footprint",
    "mask_digest",
    "protect",
    "protected_pixels",
    "safe_name",
]

#: Longest side in pixels of the working copy that faces are detected on.
DETECT_MAX_SIDE = 1600
#: Smallest face (shorter side of the detector's box, photo pixels) that is used or protected.
MIN_FACE = 20
#: Most faces a mask is learned from (OPOM uses 10 photos per person).
TRAIN_FACES = 10
#: Name of the progress manifest in the output folder.
MANIFEST_NAME = ".cloak-progress.json"
_MANIFEST_FORMAT = "cloak-progress"
_REGION_MARGIN = 2  # photo pixels kept around a frame's footprint
_STRIP_ROWS = 1024  # rows of a photo window the mask is pasted into at once


class UsageError(ValueError):
    """The request itself is wrong (output over the input, ...): nothing was done."""


@dataclass
class FileResult:
    """What happened to one input file.

    Attributes:
        path: the input file.
        status: ``"protected"`` (written), ``"up-to-date"`` (written by an earlier run with the
            same mask and options), ``"not-person"`` (faces found, none of the person: not
            written), ``"used"`` (enroll: learned from), ``"not-needed"`` (enroll: the person's
            face, beyond :data:`TRAIN_FACES`), ``"skipped"`` (not an image) or ``"failed"``.
        faces: faces protected (protect) or of the person (enroll).
        other_faces: faces found and left untouched.
        output: the protected copy, when there is one.
        seconds: time spent on this file (reading, finding faces, writing), learning excluded.
        reason: why it failed or was skipped.
        notes: conversions worth knowing (e.g. "CMYK converted to RGB").
    """

    path: Path
    status: str
    faces: int = 0
    other_faces: int = 0
    output: Path | None = None
    seconds: float = 0.0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings); holds no face data."""
        return {"input": str(self.path), "status": self.status, "faces": self.faces,
                "other_faces": self.other_faces,
                "output": None if self.output is None else str(self.output),
                "seconds": round(self.seconds, 3), "reason": self.reason, "notes": self.notes}


@dataclass
class Summary:
    """The outcome of :func:`protect` or :func:`enroll`.

    Attributes:
        person: the person's name (as used for the mask file).
        output: the output folder (protect) or None (enroll).
        mask_path: the mask file written or used, or None when there is none (or a given mask
            came without its path).
        mask_sha256: :func:`mask_digest` of the mask, or None.
        mask_source: ``"learned"``, ``"reused"`` (an earlier run's mask with the same settings),
            ``"given"`` (``--mask``) or None.
        learn_seconds: time spent learning the mask (0 when none was learned).
        training_faces: faces the mask was learned from.
        person_photos: photos in which the person was found.
        files: per input file, in discovery order.
    """

    person: str
    output: Path | None = None
    mask_path: Path | None = None
    mask_sha256: str | None = None
    mask_source: str | None = None
    learn_seconds: float = 0.0
    training_faces: int = 0
    person_photos: int = 0
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Number of files that failed."""
        return sum(r.status == "failed" for r in self.files)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: mask, per-file results and totals; no embeddings, no face data."""
        totals: dict[str, Any] = {"files": len(self.files)}
        for result in self.files:
            totals[result.status] = totals.get(result.status, 0) + 1
        totals["seconds"] = round(self.learn_seconds + sum(r.seconds for r in self.files), 3)
        return {
            "person": self.person,
            "output": None if self.output is None else str(self.output),
            "mask": {"path": None if self.mask_path is None else str(self.mask_path),
                     "sha256": self.mask_sha256, "source": self.mask_source,
                     "learn_seconds": round(self.learn_seconds, 3),
                     "training_faces": self.training_faces},
            "person_photos": self.person_photos,
            "files": [r.to_json() for r in self.files],
            "totals": totals,
        }


class Reporter:
    """Receives what a run reports. This base class ignores everything; the CLI shows it.

    Methods are called from the running thread, in order; none may raise.
    """

    def progress(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of ``stage`` are finished ("finding faces", ...)."""

    def note(self, message: str) -> None:
        """A one-line notice (mask reused, model fetched, ...)."""

    def file_done(self, result: FileResult) -> None:
        """A file reached its final state (failures are reported here, one each)."""


@dataclass(frozen=True)
class LearnSettings:
    """How to learn a mask: a :data:`~cloak.opom.MODES` preset plus overrides.

    Attributes:
        mode: ``"fast"``, ``"balanced"`` or ``"strong"``.
        eps: L-inf budget in pixel levels (of 255), or None for the preset's (8).
        steps: optimisation steps, or None for the preset's.
        seed: random seed; the same seed gives the same mask.
        surrogates: zoo names of white-box recognizers, or None for the preset's.
        protect_attributes: attributes (of :data:`cloak.opom.ATTRIBUTES`: sex, age, race)
            whose predictors the mask also pushes towards uninformative outputs, with the
            mode's attribute predictors (:meth:`attribute_plan`); empty = identity only.
            Normalised to the order of :data:`~cloak.opom.ATTRIBUTES`.
        terms: the optional objective terms (of :data:`cloak.opom.TERMS`) to use instead of
            the mode's (:func:`cloak.opom.with_terms`; empty = OPOM's objective alone), or
            None for the mode's.

    Raises:
        ValueError: an unknown attribute.
    """

    mode: str = "balanced"
    eps: float | None = None
    steps: int | None = None
    seed: int = 0
    surrogates: tuple[str, ...] | None = None
    protect_attributes: tuple[str, ...] = ()
    terms: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect_attributes", attribute_names(self.protect_attributes))

    def attribute_plan(self) -> dict[str, tuple[str, ...]]:
        """Zoo name of each attribute predictor of the mode -> the attributes it is pushed on
        (empty when no attribute is protected; see :meth:`cloak.opom.Mode.attribute_plan`).

        Raises:
            ValueError: unknown mode.
        """
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        return MODES[self.mode].attribute_plan(self.protect_attributes)

    def resolve(self) -> tuple[OpomConfig, tuple[str, ...]]:
        """The optimiser settings and surrogate names this asks for.

        Raises:
            ValueError: unknown mode or invalid settings (message names the setting).
        """
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        preset = MODES[self.mode]
        changes: dict[str, Any] = {"seed": self.seed}
        if self.eps is not None:
            changes["eps"] = float(self.eps)
        if self.steps is not None:
            changes["steps"] = int(self.steps)
        surrogates = tuple(self.surrogates) if self.surrogates else tuple(preset.surrogates)
        config = dataclasses.replace(preset.config, **changes)
        return (config if self.terms is None else with_terms(config, self.terms)), surrogates


@dataclass(frozen=True)
class ProtectOptions:
    """Options of :func:`protect`.

    Attributes:
        output: output folder, or None for :func:`default_output`.
        name: the person's name (mask file name), or None for the mask's or
            :func:`default_name`.
        mask: a mask to apply instead of learning one.
        mask_path: the file ``mask`` was read from (reported in the summary).
        learn: how to learn the mask when none is given.
        all_faces: protect every face found, not only the person's.
        jpeg_quality: JPEG quality of JPEG outputs, 1..100.
        keep_location: keep GPS EXIF in the outputs.
        force: redo everything: learn the mask again and rewrite finished outputs.
        min_face: smallest face protected, in photo pixels.
        refine: per-face refinement steps (:func:`cloak.opom.refine_mask`) with the mask's own
            surrogates and attribute predictors; 0 = paste the universal mask as it is.
    """

    output: Path | None = None
    name: str | None = None
    mask: Mask | None = None
    mask_path: Path | None = None
    learn: LearnSettings = LearnSettings()
    all_faces: bool = False
    jpeg_quality: int = 95
    keep_location: bool = False
    force: bool = False
    min_face: int = MIN_FACE
    refine: int = 0


# -- names and places ------------------------------------------------------------------------


def safe_name(name: str) -> str:
    """``name`` made safe as a file name: runs of other than letters, digits, ``.-_`` -> ``_``.

    >>> safe_name("Ada Lovelace/2024")
    'Ada_Lovelace_2024'
    """
    cleaned = re.sub(r"[^\w.-]+", "_", name).strip("._")
    return cleaned or "person"


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def default_output(inputs: Sequence[Path]) -> Path:
    """The default output folder for ``inputs``.

    - one folder ``D``: ``D_cloaked`` beside it;
    - one file ``F``: ``<F's stem>_cloaked`` beside it;
    - several inputs in one folder ``P``: ``P_cloaked`` beside ``P``.

    Raises:
        UsageError: several inputs in different folders (give an output folder).
    """
    paths = [Path(os.path.abspath(p)) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    if len(paths) == 1:
        only = paths[0]
        name = only.name if only.is_dir() else only.stem
        return only.parent / f"{name}_cloaked"
    parents = {p.parent for p in paths}
    if len(parents) > 1:
        raise UsageError("the inputs lie in different folders; choose an output folder with "
                         "-o/--output")
    parent = parents.pop()
    return parent.parent / f"{parent.name}_cloaked"


def default_name(inputs: Sequence[Path]) -> str:
    """The person's default name: the input folder's name, or the first file's folder name."""
    first = Path(os.path.abspath(inputs[0]))
    folder = first if first.is_dir() else first.parent
    return safe_name(folder.name)


def _check_output(inputs: Sequence[Path], output: Path) -> None:
    """Refuse an output folder that is an input, holds an input folder, or is an input file."""
    out = output.resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{output}: the output must be a folder, not a file")
    for item in inputs:
        path = Path(item).resolve()
        if path.is_dir() and _is_within(path, out):
            raise UsageError(f"{output}: the output folder would be the input folder {item} or "
                             "contain it; originals are never overwritten: choose another "
                             "output folder")
        if path.is_file() and path.parent == out:
            raise UsageError(f"{output}: the output folder is the folder of the input {item}; "
                             "originals are never overwritten: choose another output folder")


def _output_relative(found: FoundFile, several: bool, input_root: Path | None) -> Path:
    """Where ``found`` goes under the output folder (mirrors folders; several inputs nest)."""
    if several and input_root is not None:
        return Path(input_root.name) / found.relative
    return found.relative


def _out_path(relative: Path, photo: Photo) -> Path:
    """The output's relative path: a file written as PNG instead of its own format gets .png."""
    if photo.out_format == "PNG" and photo.format != "PNG":
        return relative.with_suffix(".png")
    return relative


# -- faces and identity ------------------------------------------------------------------------


@dataclass
class _Face:
    """A face found in a photo, with its alignment in full-resolution photo pixels."""

    matrix: torch.Tensor  # (2, 3) float32, photo pixels -> frame pixels
    size: float           # shorter side of the detector box, photo pixels


@dataclass
class _Scan:
    """One input file after scanning (the photo itself is not kept)."""

    found: FoundFile
    relative: Path
    faces: list[_Face] = field(default_factory=list)
    embeddings: torch.Tensor | None = None  # (k, d), in memory only
    seconds: float = 0.0
    result: FileResult | None = None        # set once the file is finished (failed, skipped)
    notes: list[str] = field(default_factory=list)
    label: list[int] = field(default_factory=list)  # identity group of each face


def _rgb_window(photo: Photo, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Float32 RGB (3, h, w) in [0, 255] of the photo window ``box = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    samples = photo.samples[:, y0:y1, x0:x1]
    window = samples.float() / 257.0 if photo.bit_depth == 16 else samples.float()
    return window.expand(3, -1, -1).contiguous()


def frames_footprint(matrices: torch.Tensor, height: int,
                     width: int) -> tuple[int, int, int, int]:
    """The photo window that the canonical frames of some faces cover (where a mask can land).

    Args:
        matrices: (N, 2, 3) photo-to-frame matrices, N >= 1.
        height, width: the photo's size.

    Returns:
        ``(x0, y0, x1, y1)``: the bounding box of the frames' corners in photo pixels, plus 2
        pixels, clipped to the photo (x1, y1 exclusive).
    """
    from attackers.frame import FRAME_SIZE
    from cloak.faces.align import invert

    last = FRAME_SIZE - 1.0
    corners = torch.tensor([[0.0, 0.0, 1.0], [last, 0.0, 1.0], [0.0, last, 1.0],
                            [last, last, 1.0]], dtype=torch.float64)
    xy = torch.cat([corners @ m.T for m in invert(matrices.double())])
    x0 = max(0, math.floor(xy[:, 0].min().item()) - _REGION_MARGIN)
    y0 = max(0, math.floor(xy[:, 1].min().item()) - _REGION_MARGIN)
    x1 = min(width, math.ceil(xy[:, 0].max().item()) + _REGION_MARGIN + 1)
    y1 = min(height, math.ceil(xy[:, 1].max().item()) + _REGION_MARGIN + 1)
    return x0, y0, x1, y1


def _shifted(matrices: torch.Tensor, x0: int, y0: int) -> torch.Tensor:
    """Photo-to-frame matrices re-based to a window whose top-left pixel is ``(x0, y0)``."""
    out = matrices.clone()
    out[:, :, 2] = matrices[:, :, 2] + matrices[:, :, :2] @ torch.tensor(
        [float(x0), float(y0)], dtype=matrices.dtype)
    return out


def _aligned(matrices: torch.Tensor) -> list[AlignedFace]:
    """AlignedFace records carrying only the matrices (all that pasting and cropping read)."""
    from attackers.detectors.mtcnn import Detection
    from cloak.faces import AlignedFace

    empty = torch.zeros(0)
    return [AlignedFace(frame=empty, matrix=m, detection=Detection(empty, 0.0, empty))
            for m in matrices]


def protected_pixels(photo: Photo, matrices: torch.Tensor, delta: torch.Tensor,
                     feather: float = DEFAULT_FEATHER) -> torch.Tensor:
    """The photo with the mask pasted on the given faces, ready for :func:`write_photo`.

    The mask is applied with :func:`cloak.opom.protect_photo` (bilinear, feathered, clipped to
    [0, 255]) on the window that holds the faces' frames, in strips of at most 1024 rows (the
    result equals one call on the whole photo); every other pixel is the input's.
    8-bit RGB photos come back as uint8 (rounded half to even, as the writer rounds floats),
    greyscale and 16-bit photos as float32 so the writer keeps their exact grey levels.

    Args:
        photo: the photo as read.
        matrices: (N, 2, 3) photo-to-frame matrices of the faces to protect, N >= 0.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels, shared by the faces, or
            (N, 3, FRAME_SIZE, FRAME_SIZE), one per face.
        feather: feather width in frame pixels.

    Returns:
        (3, H, W) uint8 or float32 RGB in [0, 255].
    """
    exact = photo.is_grey
    full = photo.pixels if exact else photo.samples.clone()
    if matrices.shape[0] == 0:
        return full
    x0, y0, x1, y1 = frames_footprint(matrices, photo.height, photo.width)
    for top in range(y0, y1, _STRIP_ROWS):  # strips bound the memory of a face filling a photo
        bottom = min(y1, top + _STRIP_ROWS)
        window = protect_photo(_rgb_window(photo, (x0, top, x1, bottom)),
                               _aligned(_shifted(matrices, x0, top)), delta, feather=feather)
        if exact:
            full[:, top:bottom, x0:x1] = window
        else:
            full[:, top:bottom, x0:x1] = window.round().clamp(0, 255).to(torch.uint8)
    return full


def _training_face(photo: Photo, matrix: torch.Tensor) -> TrainingFace:
    """The training face of one face of ``photo``, cut from its window (cheap on big photos)."""
    x0, y0, x1, y1 = frames_footprint(matrix[None], photo.height, photo.width)
    window = _rgb_window(photo, (x0, y0, x1, y1))
    return training_face(window, _aligned(_shifted(matrix[None], x0, y0))[0])


# -- the mask ----------------------------------------------------------------------------------


def mask_digest(mask: Mask) -> str:
    """sha256 of the mask's values and eps: equal digests give equal outputs."""
    digest = hashlib.sha256(mask.delta.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(float(mask.eps)).encode())
    return digest.hexdigest()


def _mask_settings(config: OpomConfig, mode: str,
                   attributes: Mapping[str, tuple[str, ...]] | None = None,
                   ) -> dict[str, str | int | float]:
    """The optimiser settings recorded in a mask file besides eps, seed, subspace, surrogates.

    With an attribute term (``attributes``: predictor -> its attributes, as
    :meth:`LearnSettings.attribute_plan` gives it), also ``protect_attributes`` (e.g.
    ``"sex,age"``), ``attribute_surrogates`` (e.g. ``"age-gender=sex+age,gear=sex+age"``) and
    ``attribute_weight``; masks without one record none of these.
    """
    skip = {"eps", "seed", "subspace"}
    values: dict[str, str | int | float] = {
        k: v if isinstance(v, (str, int, float)) else str(v)
        for k, v in dataclasses.asdict(config).items() if k not in skip}
    if attributes:
        protected = attribute_names(a for chosen in attributes.values() for a in chosen)
        values.update(
            protect_attributes=",".join(protected),
            attribute_surrogates=",".join(f"{n}={'+'.join(a)}" for n, a in attributes.items()),
            attribute_weight=DEFAULT_ATTRIBUTE_WEIGHT)
    return {"mode": mode, **values}


def _matches(mask: Mask, config: OpomConfig, surrogates: Sequence[str], mode: str,
             attributes: Mapping[str, tuple[str, ...]] | None = None) -> bool:
    """True when ``mask`` was learned with exactly these settings (so it can be reused).

    A mask file from before an optional objective term (:data:`cloak.opom.TERMS`) existed
    records none of it, which means the term was off."""
    settings = {**TERMS_OFF, **{k: v for k, v in mask.settings.items() if k != "training_faces"}}
    return (mask.eps == config.eps and mask.seed == config.seed
            and mask.subspace == config.subspace and mask.surrogates == list(surrogates)
            and settings == _mask_settings(config, mode, attributes))


def _mask_attribute_plan(mask: Mask) -> dict[str, tuple[str, ...]]:
    """The attribute term a mask was learned with (predictor -> attributes), from its
    ``attribute_surrogates`` setting (``"age-gender=sex+age,gear=sex"``); empty without one."""
    recorded = str(mask.settings.get("attribute_surrogates", ""))
    return {name: tuple(chosen.split("+")) for name, chosen in
            (item.split("=", 1) for item in recorded.split(",") if "=" in item)}


class _Refiner:
    """Refines the person's mask for each face (``--refine``), models loaded on first use: the
    mask's surrogates and attribute predictors, its eps, seed and feather, and the optimiser
    settings of the mode it was learned in."""

    def __init__(self, mask: Mask, steps: int, load: Callable[[str], Any]) -> None:
        mode = str(mask.settings.get("mode", "balanced"))
        self.config = dataclasses.replace(MODES[mode if mode in MODES else "balanced"].config,
                                          eps=mask.eps, seed=mask.seed, feather=mask.feather)
        self.mask, self.steps, self._load = mask, steps, load
        self._models: tuple[list[Recognizer], list[AttributeSurrogate]] | None = None

    def __call__(self, photo: Photo, matrices: torch.Tensor) -> torch.Tensor:
        """(N, 3, FRAME_SIZE, FRAME_SIZE): the mask refined for each face of ``matrices``."""
        if self._models is None:
            self._models = ([self._load(n) for n in self.mask.surrogates],
                            _attribute_surrogates(_mask_attribute_plan(self.mask), self._load))
        surrogates, predictors = self._models
        return torch.stack([refine_mask(_training_face(photo, m), self.mask.delta, surrogates,
                                        self.config, self.steps, attribute_surrogates=predictors)
                            for m in matrices])


def _attribute_surrogates(attributes: Mapping[str, tuple[str, ...]],
                          load: Callable[[str], Any]) -> list[AttributeSurrogate]:
    """The attribute term's white-box predictors (``load(zoo name)``) with their attributes."""
    return [AttributeSurrogate(load(name), chosen) for name, chosen in attributes.items()]


# -- scanning ----------------------------------------------------------------------------------


class _Models:
    """The detector and the identity recognizer, loaded on first use."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._detector: MTCNN | None = None
        self._recognizer: Recognizer | None = None

    def load(self, name: str) -> Any:
        """A zoo model, fetched (with notices) if needed."""
        import attackers

        return attackers.load(name, progress=self.reporter.note)

    @property
    def detector(self) -> MTCNN:
        if self._detector is None:
            self._detector = self.load("mtcnn")
        return self._detector

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = self.load(CLUSTER_MODEL)
        return self._recognizer


def _find_faces(photo: Photo, models: _Models, min_face: int) -> tuple[list[_Face], torch.Tensor]:
    """Detect, size-filter and embed the faces of ``photo``.

    Returns:
        the faces (full-resolution alignment) and their (k, d) embeddings.

    Raises:
        CloakError: no face found, or every face is smaller than ``min_face``.
    """
    from cloak.faces import align_faces
    from cloak.faces.align import similarity_to_frame

    small, _ = photo.downscaled(DETECT_MAX_SIDE)
    sx, sy = small.shape[-1] / photo.width, small.shape[-2] / photo.height
    with torch.no_grad():
        aligned = align_faces([small], models.detector, min_face=0)[0]
    if not aligned:
        raise CloakError(photo.path, "no face found")
    faces, frames = [], []
    largest = 0.0
    for face in aligned:
        box = face.detection.box
        size = min((box[2] - box[0]).item() / sx, (box[3] - box[1]).item() / sy)
        largest = max(largest, size)
        if size < min_face:
            continue
        # pixel centres: i in the copy covers photo pixels around (i + 0.5) / s - 0.5
        scale = torch.tensor([sx, sy], dtype=torch.float64)
        landmarks = (face.detection.landmarks.double() + 0.5) / scale - 0.5
        matrix = similarity_to_frame(landmarks[None])[0].float()
        faces.append(_Face(matrix, size))
        frames.append(face.frame)
    if not faces:
        raise CloakError(photo.path, f"face too small ({largest:.0f} px, need {min_face})")
    with torch.no_grad():
        embeddings = models.recognizer.embed(torch.stack(frames))
    return faces, embeddings


def _scan(files: Sequence[tuple[FoundFile, Path]], models: _Models, min_face: int,
          reporter: Reporter) -> list[_Scan]:
    """Read every file once and find its faces; failures are finished and reported."""
    scans = []
    reporter.progress("finding faces", 0, len(files))
    for done, (found, relative) in enumerate(files, 1):
        scan = _Scan(found, relative)
        start = time.perf_counter()
        if found.skip_reason is not None:
            scan.result = FileResult(found.path, "skipped", reason=found.skip_reason)
        else:
            try:
                photo = read_photo(found.path)
                scan.relative = _out_path(relative, photo)
                scan.notes = list(photo.warnings)
                scan.faces, scan.embeddings = _find_faces(photo, models, min_face)
                del photo
            except CloakError as err:
                scan.result = FileResult(found.path, "failed", reason=err.reason)
        scan.seconds = time.perf_counter() - start
        if scan.result is not None:
            scan.result.seconds = scan.seconds
            reporter.file_done(scan.result)
        scans.append(scan)
        reporter.progress("finding faces", done, len(files))
    return scans


def _identify(scans: Sequence[_Scan], reporter: Reporter) -> int | None:
    """Label every face by identity group; return the person's label (None: no faces)."""
    with_faces = [s for s in scans if s.result is None and s.faces]
    if not with_faces:
        return None
    labels = cluster_faces(torch.cat([s.embeddings for s in with_faces])).tolist()
    start = 0
    for scan in with_faces:
        scan.label = labels[start:start + len(scan.faces)]
        start += len(scan.faces)
    person, tied = main_identity([s.label for s in with_faces],
                                 [[f.size for f in s.faces] for s in with_faces])
    count = sum(person in s.label for s in with_faces)
    if tied:
        reporter.note(f"several people appear in {count} photos each; the one with more and "
                      "larger faces is taken as the person (use --all-faces to protect everyone)")
    return person


def _training_set(scans: Sequence[_Scan], person: int,
                  limit: int = TRAIN_FACES) -> list[tuple[_Scan, int]]:
    """Up to ``limit`` of the person's faces, one per photo: those nearest the group's mean."""
    picks = []
    for scan in scans:
        if scan.result is None and person in scan.label:
            for k, label in enumerate(scan.label):
                if label == person:
                    picks.append((scan, k))
    if not picks:
        return []
    feats = torch.stack([s.embeddings[k] for s, k in picks])
    centre = torch.nn.functional.normalize(feats.mean(0), dim=0)
    similarity = (feats @ centre).tolist()
    best: dict[int, tuple[float, int]] = {}
    for index, ((scan, _), sim) in enumerate(zip(picks, similarity, strict=True)):
        key = id(scan)
        if key not in best or sim > best[key][0]:
            best[key] = (sim, index)
    chosen = sorted(best.values(), key=lambda t: (-t[0], t[1]))[:limit]
    return [picks[i] for _, i in sorted(chosen, key=lambda t: t[1])]


def _learn(scans: Sequence[_Scan], person: int, learn: LearnSettings, name: str,
           reporter: Reporter) -> tuple[Mask | None, float, set[Path]]:
    """Learn the person's mask from their faces.

    Returns:
        (mask, seconds, paths of the photos learned from); (None, 0, {}) when no training face
        can be read.
    """
    import attackers

    config, names = learn.resolve()
    attributes = learn.attribute_plan()
    faces: list[TrainingFace] = []
    used: set[Path] = set()
    for scan, k in _training_set(scans, person):
        try:
            photo = read_photo(scan.found.path)
        except CloakError as err:
            reporter.note(f"{err}: not used for learning")
            continue
        faces.append(_training_face(photo, scan.faces[k].matrix))
        used.add(scan.found.path)
        del photo
    if not faces:
        return None, 0.0, used
    def load(zoo_name: str) -> Any:
        return attackers.load(zoo_name, progress=reporter.note)

    surrogates = [load(n) for n in names]
    predictors = _attribute_surrogates(attributes, load)
    hiding = "" if not attributes else (
        f", hiding {', '.join(learn.protect_attributes)} from {', '.join(attributes)}")
    reporter.note(f"learning {name}'s mask from {len(faces)} photos with "
                  f"{', '.join(names)}{hiding} ({config.steps} steps, eps {config.eps:g})")
    start = time.perf_counter()
    reporter.progress("learning mask", 0, config.steps)
    delta = learn_mask(faces, surrogates, config,
                       lambda step, steps, _loss: reporter.progress("learning mask", step, steps),
                       attribute_surrogates=predictors)
    seconds = time.perf_counter() - start
    settings = {**_mask_settings(config, learn.mode, attributes), "training_faces": len(faces)}
    mask = Mask(delta=delta.float().contiguous(), eps=float(config.eps),
                subspace=config.subspace, surrogates=list(names), person=name, seed=config.seed,
                settings=settings)
    return mask, seconds, used


def _prepare(inputs: Sequence[Path], output: Path | None) -> list[tuple[FoundFile, Path]]:
    """Found files (outside ``output``) with their output-relative paths."""
    several = len(inputs) > 1
    out = output.resolve() if output is not None else None
    files = []
    for root in inputs:
        root_dir = Path(root) if Path(root).is_dir() else None
        for found in iter_photo_paths([root]):
            if out is not None and _is_within(found.path.resolve(), out):
                continue
            files.append((found, _output_relative(found, several, root_dir)))
    seen: set[Path] = set()
    unique = []
    for found, relative in files:
        key = found.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((found, relative))
    return unique


# -- the manifest ------------------------------------------------------------------------------


class Manifest:
    """``<output>/.cloak-progress.json``: per output, the source's state, mask digest, options.

    Never trusted blindly: a file that is not JSON, not a cloak progress file, or holds entries
    of the wrong shape is noted and its bad entries are dropped (those outputs are redone); an
    entry counts only when its output exists, is not older than its source, and the source's
    size and modification time and the run's key all match.
    """

    def __init__(self, folder: Path, reporter: Reporter) -> None:
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        problem = not_regular(self.path)
        if problem is not None and problem != "no such file":
            reporter.note(f"{self.path}: {problem}; finished outputs are redone")
        elif problem is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("format") != _MANIFEST_FORMAT or not isinstance(data.get("files"),
                                                                            dict):
                    raise ValueError("not a cloak progress file")
                self.entries = {k: v for k, v in data["files"].items() if isinstance(v, dict)}
            except (OSError, ValueError, AttributeError) as err:
                reporter.note(f"{self.path}: unreadable ({err}); finished outputs are redone")

    @staticmethod
    def _source_state(source: Path) -> dict[str, int]:
        stat = source.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def is_done(self, relative: Path, source: Path, dest: Path, key: dict[str, Any]) -> bool:
        """True when ``dest`` exists, is not older than ``source``, and was made with ``key``."""
        entry = self.entries.get(relative.as_posix())
        if entry is None or not dest.is_file():
            return False
        state = self._source_state(source)
        return (entry.get("source") == state and entry.get("key") == key
                and dest.stat().st_mtime_ns >= state["mtime_ns"])

    def record(self, relative: Path, source: Path, key: dict[str, Any]) -> None:
        """Record a finished output and rewrite the manifest atomically."""
        self.entries[relative.as_posix()] = {"source": self._source_state(source), "key": key}
        data = json.dumps({"format": _MANIFEST_FORMAT, "version": 1, "files": self.entries},
                          indent=1, sort_keys=True)
        write_bytes_atomic(self.path, data.encode("utf-8"))


# -- the two commands --------------------------------------------------------------------------


def _obtain_mask(scans: Sequence[_Scan], person: int | None, options: ProtectOptions,
                 name: str, mask_path: Path, reporter: Reporter, summary: Summary) -> Mask | None:
    """The given mask, an earlier run's matching mask, or a newly learned (and saved) one."""
    if options.mask is not None:
        summary.mask_source, summary.mask_path = "given", options.mask_path
        return options.mask
    config, names = options.learn.resolve()
    if mask_path.exists() and not options.force:
        try:
            earlier = load_mask(mask_path)
        except MaskError as err:
            reporter.note(f"{err}; learning a new mask")
        else:
            if _matches(earlier, config, names, options.learn.mode,
                         options.learn.attribute_plan()):
                reporter.note(f"reusing {mask_path} (learned earlier with the same settings)")
                summary.mask_source = "reused"
                summary.mask_path = mask_path
                return earlier
            reporter.note(f"{mask_path} was learned with other settings; learning a new mask")
    if person is None:
        return None
    mask, summary.learn_seconds, _ = _learn(scans, person, options.learn, name, reporter)
    if mask is None:
        return None
    summary.training_faces = int(mask.settings["training_faces"])
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    save_mask(mask, mask_path)
    summary.mask_source = "learned"
    summary.mask_path = mask_path
    return mask


def protect(inputs: Sequence[str | Path], options: ProtectOptions | None = None,
            reporter: Reporter | None = None) -> Summary:
    """Protect the person's photos among ``inputs`` (files or folders); see the module notes.

    Args:
        inputs: photos and folders of photos (folders are walked recursively).
        options: see :class:`ProtectOptions`.
        reporter: receives progress, notices and per-file results.

    Returns:
        the :class:`Summary`; ``summary.failed`` counts the files that failed.

    Raises:
        UsageError: the request is wrong (output would overwrite inputs, ...): nothing was done.
        FolderBusy: another run holds the output folder's lock: nothing was done.
        ImageError: an input does not exist.
        MaskError: the mask cannot be saved.
        attackers.zoo.FetchError: a model cannot be fetched.
    """
    options = options or ProtectOptions()
    reporter = reporter or Reporter()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    options.learn.resolve()
    output = Path(options.output) if options.output is not None else default_output(paths)
    _check_output(paths, output)
    name = safe_name(options.name or (options.mask.person if options.mask else "")
                     or default_name(paths))
    with folder_lock(output):  # a second run on the same folder is refused, not interleaved
        files = _prepare(paths, output)
        originals = {found.path.resolve() for found, _ in files}
        summary = Summary(person=name, output=output)

        models = _Models(reporter)
        scans = _scan(files, models, options.min_face, reporter)
        person = _identify(scans, reporter)
        summary.person_photos = sum(person in s.label for s in scans if s.result is None)
        mask = _obtain_mask(scans, person, options, name, output / f"{name}{MASK_SUFFIX}",
                            reporter, summary)
        if mask is not None:
            summary.mask_sha256 = mask_digest(mask)
        key = {"mask_sha256": summary.mask_sha256, "jpeg_quality": options.jpeg_quality,
               "keep_location": options.keep_location, "all_faces": options.all_faces,
               "feather": None if mask is None else mask.feather,
               **({"refine": options.refine} if options.refine else {})}
        refiner = None if mask is None or not options.refine else _Refiner(mask, options.refine,
                                                                           models.load)

        manifest = Manifest(output, reporter)
        claimed: dict[Path, Path] = {}
        pending = [s for s in scans if s.result is None]
        reporter.progress("writing", 0, len(pending))
        for done, scan in enumerate(pending, 1):
            scan.result = _write_one(scan, person, mask, options, output, key, manifest, claimed,
                                     originals, refiner)
            scan.result.notes = scan.notes
            reporter.file_done(scan.result)
            reporter.progress("writing", done, len(pending))
        summary.files = [s.result for s in scans if s.result is not None]
    return summary


def _write_one(scan: _Scan, person: int | None, mask: Mask | None, options: ProtectOptions,
               output: Path, key: dict[str, Any], manifest: Manifest, claimed: dict[Path, Path],
               originals: set[Path], refiner: _Refiner | None = None) -> FileResult:
    """Protect and write one scanned photo (or decide it needs no writing)."""
    path = scan.found.path
    chosen = [k for k, label in enumerate(scan.label) if options.all_faces or label == person]
    others = len(scan.faces) - len(chosen)
    result = FileResult(path, "failed", faces=len(chosen), other_faces=others,
                        seconds=scan.seconds)
    if mask is None:
        result.reason = "no mask: the person's face could not be learned from these photos"
        return result
    if not chosen:
        result.status = "not-person"
        result.reason = (f"{others} face{'s' if others != 1 else ''} of other people, left "
                         "untouched; not written (use --all-faces to protect them)")
        return result
    dest = output / scan.relative
    resolved = dest.resolve()
    if resolved in originals:
        result.reason = f"the output {dest} would overwrite an input photo; not written"
        return result
    if resolved in claimed:
        result.reason = f"the output {dest} is already written for {claimed[resolved]}"
        return result
    claimed[resolved] = path
    start = time.perf_counter()
    try:
        if not options.force and manifest.is_done(scan.relative, path, dest, key):
            result.status, result.output = "up-to-date", dest
            return result
        photo = read_photo(path)
        matrices = torch.stack([scan.faces[k].matrix for k in chosen])
        delta = mask.delta if refiner is None else refiner(photo, matrices)
        pixels = protected_pixels(photo, matrices, delta, mask.feather)
        write_photo(photo, pixels, dest, jpeg_quality=options.jpeg_quality,
                    keep_location=options.keep_location)
        del photo, pixels
        manifest.record(scan.relative, path, key)
        result.status, result.output = "protected", dest
    except CloakError as err:  # the output's own error (cannot write) names the output
        result.reason = err.reason if err.path == path else f"{err.path}: {err.reason}"
    except OSError as err:
        result.reason = f"cannot write the output ({err.strerror or err})"
    finally:
        result.seconds = scan.seconds + time.perf_counter() - start
    return result


def enroll(name: str, inputs: Sequence[str | Path], output: Path,
           learn: LearnSettings | None = None, min_face: int = MIN_FACE,
           reporter: Reporter | None = None) -> Summary:
    """Learn ``name``'s mask from their photos among ``inputs`` and write it to ``output``.

    No photo is written. Whose photos these are is decided as in :func:`protect`.

    Args:
        name: the person's name (stored in the mask).
        inputs: photos and folders of photos.
        output: the mask file to write (replaced if it exists).
        learn: how to learn the mask.
        min_face: smallest face used, in photo pixels.
        reporter: receives progress, notices and per-file results.

    Returns:
        the :class:`Summary` (``output`` None, ``mask_path`` the file written, or None when no
        face of the person could be used).
    """
    learn = learn or LearnSettings()
    reporter = reporter or Reporter()
    learn.resolve()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    summary = Summary(person=name)
    scans = _scan(_prepare(paths, None), _Models(reporter), min_face, reporter)
    person = _identify(scans, reporter)
    summary.person_photos = sum(person in s.label for s in scans if s.result is None)
    mask, used = None, set()
    if person is not None:
        mask, summary.learn_seconds, used = _learn(scans, person, learn, name, reporter)
    if mask is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_mask(mask, output)
        summary.mask_path, summary.mask_source = output, "learned"
        summary.mask_sha256 = mask_digest(mask)
        summary.training_faces = int(mask.settings["training_faces"])
    for scan in scans:
        if scan.result is None:
            mine = sum(label == person for label in scan.label)
            status, reason = "used", None
            if not mine:
                status, reason = "not-person", "only other people's faces"
            elif scan.found.path not in used:
                status, reason = "not-needed", f"the mask is learned from {TRAIN_FACES} photos"
            scan.result = FileResult(scan.found.path, status, faces=mine,
                                     other_faces=len(scan.faces) - mine, seconds=scan.seconds,
                                     reason=reason, notes=scan.notes)
            reporter.file_done(scan.result)
    summary.files = [s.result for s in scans if s.result is not None]
    return summary


"""Protecting a person's photos (``cloak protect``) and enrolling a person (``cloak enroll``).

The pipeline, free of any UI (:mod:`cloak.cli` parses options and draws progress; a
:class:`Reporter` receives what happens), one module per stage:

1. :mod:`~cloak.photos.discover`: find the photos (:func:`~cloak.imageio.iter_photo_paths`);
   files under the output folder are left out, so an output folder inside an input folder is
   never re-protected; :mod:`~cloak.photos.outputs` says where each copy goes;
2. :mod:`~cloak.photos.scan`: read each photo once, detect faces on a working copy whose
   longest side is at most :data:`DETECT_MAX_SIDE` pixels (landmarks mapped back to full
   resolution), drop faces narrower than ``min_face`` photo pixels, embed each remaining face
   with :data:`~cloak.identity.CLUSTER_MODEL`; embeddings stay in memory and are never written
   (DESIGN section 7);
3. :mod:`~cloak.photos.identify`: decide whose photos these are: the person is the group of
   similar faces present in the most photos (:mod:`cloak.identity`);
4. :mod:`~cloak.photos.learn`: learn the person's mask from up to :data:`TRAIN_FACES` of their
   faces (one per photo, the most typical first) with :class:`~cloak.masking.MaskLearner`, or
   use a given one, or an earlier run's with the same settings; a learned mask is saved as soon
   as it exists, so an interrupted run reuses it;
5. :mod:`~cloak.photos.write`: write protected copies (:func:`protected_pixels`,
   :mod:`~cloak.photos.paste`): the mask is pasted on the person's faces only (every face with
   ``all_faces``), all other pixels are the input's; with ``refine`` each face first gets its
   own refined copy of the mask, refined with the run's other photos in batches that are
   pushed apart so the person's protected photos do not match each other; the copy keeps
   format, size and mode
   (:func:`~cloak.imageio.write_photo`). A manifest in the output folder (:data:`MANIFEST_NAME`,
   :mod:`~cloak.photos.manifest`) records, per output, the mask's digest and the options, so a
   rerun skips outputs that are already done.

:mod:`~cloak.photos.run` strings the stages together (:func:`protect`, :func:`enroll`);
:mod:`~cloak.photos.options` holds what they are given and what they report. With
``engine="dask"`` the scanning and the writing run on a Dask cluster
(:mod:`~cloak.photos.engine`), with the same outputs.

Memory: one photo at a time; detection runs on the working copy; the mask is applied to the
window around the faces only, in strips, and 8-bit RGB photos are assembled as uint8:
``cloak protect`` over ``shared/data/bad_inputs`` (with its 8000x6000 photo) peaks at about
1.0 GB resident, models included; decoding the 48 MP JPEG alone peaks at 0.46 GB.

>>> # summary = protect(["~/photos/alice"], ProtectOptions(learn=LearnSettings(mode="fast")))
>>> # summary.mask_path, [r.status for r in summary.files]
"""

from cloak.photos.learn import TRAIN_FACES
from cloak.photos.manifest import MANIFEST_NAME, Manifest
from cloak.photos.options import (
    MIN_FACE,
    FileResult,
    ProtectOptions,
    Reporter,
    Summary,
    UsageError,
)
from cloak.photos.outputs import default_name, default_output, safe_name
from cloak.photos.paste import protected_pixels
from cloak.photos.run import enroll, protect
from cloak.photos.scan import DETECT_MAX_SIDE

__all__ = [
    "DETECT_MAX_SIDE",
    "MANIFEST_NAME",
    "MIN_FACE",
    "TRAIN_FACES",
    "FileResult",
    "Manifest",
    "ProtectOptions",
    "Reporter",
    "Summary",
    "UsageError",
    "default_name",
    "default_output",
    "enroll",
    "protect",
    "protected_pixels",
    "safe_name",
]

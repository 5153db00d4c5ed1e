"""The distractor gallery of the LFW protocol: features of ``lfw/distractors``, cached.

Distractor landmarks and features are cached under ``cache_dir`` as numpy arrays
(:class:`evaluation.store.ArrayCache`, loaded with ``allow_pickle=False``), each with a JSON
sidecar holding the file list, a SHA-256 over the files' names and contents and the model's
weight digests; a cache whose sidecar does not match is rebuilt. They describe public LFW photos
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from attackers import zoo
from attackers.black_boxes import RECOGNIZERS
from evaluation.protocol.lfw import central_faces, load_rgb
from evaluation.protocol.recognition import embed
from evaluation.store import ArrayCache, files_digest

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = ["distractor_features"]


def _landmarks(files: Sequence[Path], detector: MTCNN, batch: int,
               progress: bool) -> np.ndarray:
    """(N, 5, 2) float32 landmarks of each photo's central face; NaN where none is found."""
    landmarks = np.full((len(files), 5, 2), np.nan, dtype=np.float32)
    for i in tqdm(range(0, len(files), batch), desc="detect distractors", unit="batch",
                  disable=not progress):
        images = [load_rgb(p) for p in files[i:i + batch]]
        for j, face in enumerate(central_faces(images, detector)):
            if face is not None:
                landmarks[i + j] = face.detection.landmarks.numpy()
    return landmarks


def distractor_features(files: Sequence[Path], tested: Sequence[str],
                        recognizers: dict[str, Recognizer], detector: MTCNN | None,
                        cache_dir: Path, batch: int = 16,
                        progress: bool = True) -> dict[str, torch.Tensor]:
    """Features of the distractor photos for each tested recognizer, from the cache or computed.

    Args:
        files: the distractor photos, in order.
        tested: recognizer names (keys of :data:`attackers.black_boxes.RECOGNIZERS`).
        recognizers: the loaded recognizers by name.
        detector: MTCNN, used only when the landmark cache is missing.
        cache_dir: cache folder.
        batch: photos per detector / recognizer call.
        progress: show progress bars.

    Returns:
        name -> (N, D) float32 L2-normalised features, one row per photo with a face (the same
        photos for every recognizer).
    """
    from cloak.faces.align import similarity_to_frame, to_frame

    digest = files_digest(files)
    base = {"files": [p.name for p in files], "files_sha256": digest}
    tag = f"distractors-{len(files)}-{digest[:12]}"
    marks_cache = ArrayCache(cache_dir, f"mtcnn-{tag}", {
        **base, "array": "(N, 5, 2) float32 landmarks of the central face, photo pixels; NaN "
                         "where no face", "detector": zoo.weights_digests("mtcnn")})
    landmarks = marks_cache.load(len(files))
    if landmarks is None:
        landmarks = _landmarks(files, detector, batch, progress)
        marks_cache.save(landmarks)
    has_face = ~np.isnan(landmarks).any(axis=(1, 2))
    caches = {name: ArrayCache(cache_dir, f"{name}-{tag}", {
        **base, "array": "(N, D) float32 L2-normalised features; NaN where no face",
        "recognizer": name, "zoo": RECOGNIZERS[name][0], "reference_runtime": RECOGNIZERS[name][1],
        "weights": zoo.weights_digests(RECOGNIZERS[name][0]),
        "landmarks": marks_cache.array_path.name}) for name in tested}
    features = {name: cache.load(len(files)) for name, cache in caches.items()}
    missing = [name for name, feats in features.items() if feats is None]
    if missing:
        fresh = {name: np.full((len(files), recognizers[name].dim), np.nan, dtype=np.float32)
                 for name in missing}
        rows = np.flatnonzero(has_face)
        for i in tqdm(range(0, len(rows), batch), desc=f"embed distractors ({', '.join(missing)})",
                      unit="batch", disable=not progress):
            chunk = rows[i:i + batch]
            images = [load_rgb(files[r]) for r in chunk]
            matrices = similarity_to_frame(torch.from_numpy(landmarks[chunk]))
            frames = [to_frame(img, m[None])[0].clamp(0, 255)
                      for img, m in zip(images, matrices, strict=True)]
            for name in missing:
                fresh[name][chunk] = embed(recognizers[name], frames).numpy()
        for name in missing:
            caches[name].save(fresh[name])
            features[name] = fresh[name]
    return {name: torch.from_numpy(feats[has_face]) for name, feats in features.items()}

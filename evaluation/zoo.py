"""The zoo benchmark: detection rate and leave-one-out rank-1 identification on LFW identities.

Runs the zoo's own pipeline end to end: MTCNN detection, 5-point alignment into the canonical
frame, each recognizer's crop and embedding. For each model: leave-one-out rank-1 (each photo's
nearest other photo has the same identity, :mod:`evaluation.identification`), same-vs-different
AUC, and embedding images/s on this CPU (crop warp + network, batch 32, no gradients).
Detection images/s is reported too.

>>> # result = run_zoo_benchmark(DEFAULT_LFW, people=5, per_person=10, models=["sface"])
>>> # write_report(result, Path("zoo.json"), Path("docs/BENCHMARKS.md"), "cloak benchmark zoo")
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from evaluation.identification import leave_one_out_rank1, same_different_auc
from evaluation.protocol.lfw import LfwPhoto, central_face_index, identity_photos, load_rgb
from evaluation.report import markdown_table, write_json, write_markdown_section

__all__ = ["THRESHOLDS", "detect_and_align", "embed_all", "report_markdown",
           "run_zoo_benchmark", "similarity_correlations", "write_report"]

#: Acceptance thresholds of the zoo issue (rank-1).
THRESHOLDS = {"facenet": 0.97, "dlib-resnet": 0.97, "dlib-native": 0.97, "sface": 0.97,
              "mobilefacenet": 0.95, "faceres": 0.95}


def detect_and_align(photos: Sequence[LfwPhoto], batch: int,
                     progress: bool = True) -> tuple[torch.Tensor, list[int], float]:
    """(F, 3, 224, 224) canonical frames of the central face of each photo with a face, the
    indices of those photos, and detection + alignment images per second."""
    import attackers
    from cloak.faces.align import similarity_to_frame, to_frame

    detector = attackers.load("mtcnn")
    frames, kept = [], []
    start = time.perf_counter()
    for i in tqdm(range(0, len(photos), batch), desc="detect+align", unit="batch",
                  disable=not progress):
        images = [load_rgb(p.path) for p in photos[i:i + batch]]
        with torch.no_grad():
            detections = detector.detect(images)
        for j, (image, dets) in enumerate(zip(images, detections, strict=False)):
            if not dets:
                continue
            boxes = torch.stack([d.box for d in dets])
            face = dets[central_face_index(boxes, tuple(image.shape[1:]))]
            matrix = similarity_to_frame(face.landmarks[None])
            frames.append(to_frame(image[None], matrix)[0])
            kept.append(i + j)
    seconds = time.perf_counter() - start
    return torch.stack(frames), kept, len(photos) / seconds


def embed_all(name: str, frames: torch.Tensor, batch: int,
              progress: bool = True) -> tuple[torch.Tensor, float]:
    """(F, D) features of the frames by zoo model ``name`` and its images per second (after a
    warm-up call: first-call allocations are not throughput)."""
    import attackers

    model = attackers.load(name)
    feats = []
    with torch.no_grad():
        model.embed(frames[:2])
    start = time.perf_counter()
    with torch.no_grad():
        for i in tqdm(range(0, len(frames), batch), desc=name, unit="batch", leave=False,
                      disable=not progress):
            feats.append(model.embed(frames[i:i + batch]))
    seconds = time.perf_counter() - start
    return torch.cat(feats), len(frames) / seconds


def similarity_correlations(features: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """How alike two models see the same faces: Pearson r of their pairwise cosine similarities.

    Two copies of one model (or one model and a rotation of its features) give r = 1; unrelated
    recognizers still agree on who looks alike, so r is high but clearly below 1.

    Args:
        features: model name -> (F, D_model) L2-normalised features of the same F >= 3 photos,
            in the same order.

    Returns:
        r[a][b] over the F (F - 1) / 2 distinct photo pairs, for every two models (r[a][a] = 1).

    >>> x = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    >>> round(similarity_correlations({"a": x, "b": -x})["a"]["b"], 6)
    1.0
    """
    sims = {}
    for name, feats in features.items():
        upper = torch.triu_indices(len(feats), len(feats), 1)
        sims[name] = (feats @ feats.T)[upper[0], upper[1]].double()
    return {a: {b: float(torch.corrcoef(torch.stack([sa, sb]))[0, 1]) for b, sb in sims.items()}
            for a, sa in sims.items()}


def run_zoo_benchmark(lfw: Path, people: int | None = None, per_person: int | None = None,
                      models: Sequence[str] = tuple(THRESHOLDS), batch: int = 32,
                      log_line: Callable[[str], None] = print,
                      progress: bool = True) -> dict[str, Any]:
    """Detect, align and embed LFW identity photos with each model; JSON-ready results.

    Args:
        lfw: the ``lfw`` folder.
        people: only the first N people (sorted by name); None = all 62.
        per_person: only the first N photos per person; None = all.
        models: zoo recognizer names.
        batch: frames per embedding call.
        log_line: called with the detection line and one line per model.
        progress: show progress bars.
    """
    photos = identity_photos(lfw, per_person, people)
    frames, kept, detect_ips = detect_and_align(photos, batch=16, progress=progress)
    labels = [photos[i].person for i in kept]
    detection_rate = len(kept) / len(photos)
    log_line(f"faces found in {len(kept)}/{len(photos)} photos ({detection_rate:.4f})")
    results = []
    for name in models:
        feats, ips = embed_all(name, frames, batch, progress)
        row = {"model": name, "rank1": leave_one_out_rank1(feats, labels),
               "auc": same_different_auc(feats, labels), "images_per_s": ips,
               "threshold": THRESHOLDS.get(name)}
        row["pass"] = row["threshold"] is None or row["rank1"] >= row["threshold"]
        results.append(row)
        log_line(f"{name}: rank-1 {row['rank1']:.4f}  AUC {row['auc']:.4f}  {ips:.1f} img/s")
    return {
        "benchmark": "zoo: LFW leave-one-out rank-1",
        "photos": len(photos), "people": len({p.person for p in photos}),
        "faces_found": len(kept), "detection_rate": detection_rate,
        "detect_align_images_per_s": detect_ips,
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "models": results,
    }


def _table(result: dict[str, Any]) -> str:
    return markdown_table(
        ["model", "rank-1 (LOO)", "same/diff AUC", "images/s", "needed", "pass"],
        [[r["model"], r["rank1"], r["auc"], f"{r['images_per_s']:.1f}",
          r["threshold"] if r["threshold"] is not None else "-", "yes" if r["pass"] else "NO"]
         for r in result["models"]])


def report_markdown(result: dict[str, Any], command: str) -> str:
    """The ``zoo`` section of docs/BENCHMARKS.md."""
    return (f"## Model zoo on LFW identities\n\n`{command}`: {result['photos']} photos of "
            f"{result['people']} people; faces found in {result['faces_found']} "
            f"({result['detection_rate']:.4f}); detection + alignment "
            f"{result['detect_align_images_per_s']:.1f} images/s; {result['torch_threads']} "
            f"torch threads on this CPU.\n\n{_table(result)}\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str, section: str = "zoo") -> str:
    """Write the JSON results (with the command) and the ``zoo`` section; return the table."""
    if json_path is not None:
        write_json(json_path, {"benchmark": result["benchmark"], "command": command,
                               **{k: v for k, v in result.items() if k != "benchmark"}})
    if markdown_path is not None:
        write_markdown_section(markdown_path, section, report_markdown(result, command))
    return _table(result)

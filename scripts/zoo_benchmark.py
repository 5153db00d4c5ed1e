"""Zoo benchmark: detection rate and leave-one-out rank-1 identification on LFW identities.

Runs the zoo's own pipeline end to end: MTCNN detection, 5-point alignment into the canonical
frame, each recognizer's crop and embedding. For each model: leave-one-out rank-1 (each photo's
nearest other photo has the same identity), same-vs-different AUC, and embedding images/s on
this CPU (crop warp + network, batch 32, no gradients). Detection images/s is reported too.

Writes JSON (``--out``) and the ``zoo`` section of ``docs/BENCHMARKS.md``.

    python scripts/zoo_benchmark.py                       # all 62 people x 30 photos
    python scripts/zoo_benchmark.py --people 5 --per-person 10 --models sface  # quick look
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

import attackers
from cloak.faces.align import similarity_to_frame, to_frame
from evaluation.identification import leave_one_out_rank1, same_different_auc
from evaluation.lfw import central_face_index, identity_photos, load_rgb
from evaluation.report import markdown_table, write_json, write_markdown_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO.parent / "shared" / "data" / "lfw"
#: acceptance thresholds of the zoo issue (rank-1)
THRESHOLDS = {"facenet": 0.97, "dlib-resnet": 0.97, "dlib-native": 0.97, "sface": 0.97,
              "mobilefacenet": 0.95, "faceres": 0.95}


def detect_and_align(photos, batch: int) -> tuple[torch.Tensor, list[int], float]:
    """Canonical frames of the central face of each photo; indices of photos with a face."""
    detector = attackers.load("mtcnn")
    frames, kept = [], []
    start = time.perf_counter()
    for i in tqdm(range(0, len(photos), batch), desc="detect+align", unit="batch"):
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


def embed_all(name: str, frames: torch.Tensor, batch: int) -> tuple[torch.Tensor, float]:
    model = attackers.load(name)
    feats = []
    with torch.no_grad():
        model.embed(frames[:2])  # warm-up: first-call allocations are not throughput
    start = time.perf_counter()
    with torch.no_grad():
        for i in tqdm(range(0, len(frames), batch), desc=name, unit="batch", leave=False):
            feats.append(model.embed(frames[i:i + batch]))
    seconds = time.perf_counter() - start
    return torch.cat(feats), len(frames) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--per-person", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "zoo_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()

    photos = identity_photos(args.lfw, args.per_person, args.people)
    frames, kept, detect_ips = detect_and_align(photos, batch=16)
    labels = [photos[i].person for i in kept]
    detection_rate = len(kept) / len(photos)
    print(f"faces found in {len(kept)}/{len(photos)} photos ({detection_rate:.4f})")

    results = []
    for name in args.models:
        feats, ips = embed_all(name, frames, args.batch)
        row = {"model": name, "rank1": leave_one_out_rank1(feats, labels),
               "auc": same_different_auc(feats, labels), "images_per_s": ips,
               "threshold": THRESHOLDS.get(name)}
        row["pass"] = row["threshold"] is None or row["rank1"] >= row["threshold"]
        results.append(row)
        print(f"{name}: rank-1 {row['rank1']:.4f}  AUC {row['auc']:.4f}  {ips:.1f} img/s")

    data = {
        "benchmark": "zoo: LFW leave-one-out rank-1",
        "command": " ".join(["python scripts/zoo_benchmark.py", *sys.argv[1:]]),
        "photos": len(photos), "people": len({p.person for p in photos}),
        "faces_found": len(kept), "detection_rate": detection_rate,
        "detect_align_images_per_s": detect_ips,
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "models": results,
    }
    write_json(args.out, data)
    table = markdown_table(
        ["model", "rank-1 (LOO)", "same/diff AUC", "images/s", "needed", "pass"],
        [[r["model"], r["rank1"], r["auc"], f"{r['images_per_s']:.1f}",
          r["threshold"] if r["threshold"] is not None else "-", "yes" if r["pass"] else "NO"]
         for r in results])
    body = (f"## Model zoo on LFW identities\n\n`{data['command']}`: {data['photos']} photos of "
            f"{data['people']} people; faces found in {len(kept)} ({detection_rate:.4f}); "
            f"detection + alignment {detect_ips:.1f} images/s; {data['torch_threads']} torch "
            f"threads on this CPU.\n\n{table}\n")
    write_markdown_section(args.markdown, "zoo", body)
    print(table)


if __name__ == "__main__":
    main()

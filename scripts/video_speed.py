"""Same-run speed of two code trees' ``cloak video``: the video benchmark's clip, in turns.

Renders the video benchmark's first clip (two enrolled people crossing and a stranger) once,
then protects it with the old and the new code tree alternately, each run a fresh process
with ``PYTHONPATH`` on its tree (:mod:`evaluation.video.speed`). Writes JSON (``--out``) and the
``video-speed`` section of docs/BENCHMARKS.md.

    python scripts/video_speed.py --old /work/main --rounds 3 --seconds 4 --size 720p

``--driver SPEC`` is the per-run mode the script starts itself in: it only imports what both
trees have (attackers, cloak.video.protect, evaluation.video.placement) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def drive(spec_path: Path, threads: int) -> None:
    """Time one protection of the clip with the code on ``PYTHONPATH``; print a JSON line."""
    import time
    from types import SimpleNamespace

    import numpy as np
    import torch

    import attackers
    from cloak.imageio import read_photo
    from cloak.mask import load_mask
    from cloak.video.protect import VideoOptions, analyse_video, enroll_person, render_video
    from evaluation.video.placement import mask_assignment

    torch.set_num_threads(1)  # as cloak video
    spec = json.loads(spec_path.read_text())
    detector, sface = attackers.load("mtcnn"), attackers.load("sface")
    people = [enroll_person(load_mask(p["mask"]), [read_photo(f).pixels for f in p["photos"]],
                            detector, sface) for p in spec["people"]]
    masks = {p.name: p.mask for p in people}
    truth = np.load(spec["truth"])
    clip = SimpleNamespace(labels=tuple(spec["labels"]),
                           **{k: torch.from_numpy(truth[k]) for k in ("boxes", "landmarks",
                                                                      "visible")})
    source = Path(spec["clip"])
    dest = source.with_name("protected.mp4")
    options = VideoOptions(threads=threads)
    for _ in range(2):  # a warm-up protection (lazy imports, allocator), then the timed one
        cpu0, wall0 = time.process_time(), time.perf_counter()
        analysis = analyse_video(source, people, detector, sface, options)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        digest = render_video(analysis, dest, masks, options)
        cpu2, wall2 = time.process_time(), time.perf_counter()
    frames = spec["frames"]
    print(json.dumps({
        "frames_per_second": frames / (wall2 - wall0),
        "cpu_ms_per_frame": 1000 * (cpu2 - cpu0) / frames,
        "analyse_cpu_ms_per_frame": 1000 * (cpu1 - cpu0) / frames,
        "render_cpu_ms_per_frame": 1000 * (cpu2 - cpu1) / frames,
        "analyse_s": wall1 - wall0, "render_s": wall2 - wall1,
        "placement": mask_assignment(analysis.plan, clip, set(masks)),
        "tracks": [who.person for who in analysis.identities], "masked_pixels": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--driver", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--old", type=Path, default=Path("/work/main"),
                        help="the code tree to compare with (its root)")
    parser.add_argument("--new", type=Path, default=REPO, help="the code tree to measure")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tree, alternating")
    parser.add_argument("--people", type=int, default=2, help="as video_benchmark.py; the "
                        "first two make the clip")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="720p")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=0, help="threads per video (0: all "
                        "cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None,
                        help="distractor features and learned masks (default: the benchmarks')")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "video_speed.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.driver is not None:
        drive(args.driver, args.threads)
        return

    import platform

    from evaluation.paths import DEFAULT_CACHE
    from evaluation.report import publish
    from evaluation.video.settings import VideoBenchmarkSettings, parse_size
    from evaluation.video.speed import (
        compare_trees,
        prepare_inputs,
        speed_markdown,
        summarise_speed,
    )

    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    settings = VideoBenchmarkSettings(people=args.people, seconds=args.seconds, size=args.size,
                                      fps=args.fps, seed=args.seed,
                                      cache_dir=args.cache or DEFAULT_CACHE, progress=False)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory(prefix="cloak-video-speed-") as tmp:
        spec = prepare_inputs(settings, Path(tmp), print)
        runs = compare_trees(trees, spec, Path(__file__).resolve(), rounds=args.rounds,
                             threads=args.threads, say=print)
        labels = json.loads(spec.read_text())["labels"]
    result = {"benchmark": "video speed: two code trees' cloak video, same clip, in turns",
              "trees": {k: str(v) for k, v in trees.items()},
              "labels": labels,
              "frames": max(2, round(args.seconds * args.fps)), "fps": args.fps,
              "frame_size": list(parse_size(args.size)), "rounds": args.rounds,
              "threads": args.threads, "cpu": platform.processor() or platform.machine(),
              "runs": runs, "summary": summarise_speed(runs, "old", "new")}
    command = " ".join(["python scripts/video_speed.py", *sys.argv[1:]])
    print(publish(result, speed_markdown(result, command), args.out, args.markdown, command,
                  "video-speed"))


if __name__ == "__main__":
    main()

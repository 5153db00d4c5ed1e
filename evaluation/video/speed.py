"""Same-run speed of two code trees' ``cloak video`` on the video benchmark's first clip.

The machine is shared, so wall times drift from minute to minute: this runs both trees on the
same clip in turns (round 1: old then new, round 2: new then old, ...) and compares them run
by run. :func:`prepare_inputs` (this tree) renders the clip of the video benchmark
(:mod:`evaluation.video.run`: two enrolled people crossing and a stranger), writes the two
people's masks (the benchmark's cached fast-fold masks) as ``.cloak`` files and the clip's
ground truth (face boxes and landmarks of the rendered actors) to a scratch folder, and lists
each person's 10 training photos as their references. Each run is one process started with
``PYTHONPATH`` set to a code tree; it enrols the people from their photos (features in memory
only, DESIGN section 7), protects the clip once as a warm-up, then times the second
protection: wall and process CPU time (all threads) of the analysis and the render passes, and
where the masks land (:func:`evaluation.video.placement.mask_assignment`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.report import markdown_table

__all__ = ["compare_trees", "prepare_inputs", "speed_markdown", "summarise_speed"]


def prepare_inputs(settings: Any, folder: Path, say: Callable[[str], None]) -> Path:
    """Write the clip, masks, ground truth and the run description into ``folder``.

    Args:
        settings: :class:`~evaluation.video.settings.VideoBenchmarkSettings` (its first two
            people, size, seconds, fps, seed, mode and cache are used).
        folder: scratch folder (the caller deletes it).
        say: progress lines.

    Returns:
        the run description (JSON): ``clip``, ``truth``, ``people`` (name, mask file,
        reference photos), ``frames``.
    """
    import torch

    import attackers
    from cloak.mask import save_mask
    from evaluation.protocol.folds import load_surrogates
    from evaluation.protocol.lfw import distractor_files
    from evaluation.video.people import enrolled_people, learn_masks, mask_store
    from evaluation.video.run import clip_stranger
    from evaluation.video.settings import parse_size
    from evaluation.video_clips import crossing_scene, render_clip_file

    torch.set_num_threads(1)
    folds = settings.folds()[:1]
    detector, sface = attackers.load("mtcnn"), attackers.load("sface")
    people, _ = enrolled_people(settings, detector, sface, say)
    pair = people[:2]
    store = mask_store(settings, folds)
    surrogates = load_surrogates(folds)
    masks = {p.name: learn_masks(p, settings, folds, surrogates, store)[folds[0].name]
             for p in pair}
    frames = max(2, round(settings.seconds * settings.fps))
    actors = crossing_scene([p.probes[0].path for p in pair],
                            clip_stranger(distractor_files(settings.lfw), 0, settings.seed))
    clip = render_clip_file(actors, detector, folder / "clip.mp4",
                            size=parse_size(settings.size), frames=frames, fps=settings.fps,
                            seed=settings.seed)
    np.savez(folder / "truth.npz", boxes=clip.boxes.numpy(), landmarks=clip.landmarks.numpy(),
             visible=clip.visible.numpy())
    spec = {"clip": str(folder / "clip.mp4"), "truth": str(folder / "truth.npz"),
            "labels": list(clip.labels), "frames": frames,
            "people": [{"name": p.name, "mask": str(save_mask(masks[p.name],
                                                              folder / f"{p.name}.cloak")),
                        "photos": [str(photo.path) for photo in p.train]} for p in pair]}
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    say(f"clip of {frames} frames: {' + '.join(clip.labels)}")
    return path


def compare_trees(trees: dict[str, Path], spec: Path, driver: Path, *, rounds: int,
                  threads: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run ``driver --driver spec`` once per tree per round, alternating which goes first.

    Args:
        trees: label -> code tree (its root goes first on ``PYTHONPATH``), two of them.
        spec: from :func:`prepare_inputs`.
        driver: the script whose ``--driver`` mode times one protection
            (scripts/video_speed.py).
        rounds: rounds of one run per tree.
        threads: threads per video (``VideoOptions.threads``; 0 = all cores).
        say: progress lines.

    Returns:
        one record per run: ``tree``, ``round``, ``load`` (1-minute load average before the
        run) and the driver's figures.

    Raises:
        RuntimeError: a run failed (its error output is in the message).
    """
    runs = []
    labels = list(trees)
    for round_ in range(rounds):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            env = {**os.environ, "PYTHONPATH": str(trees[label])}
            load = os.getloadavg()[0]
            done = subprocess.run([sys.executable, str(driver), "--driver", str(spec),
                                   "--threads", str(threads)], env=env, capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{label} ({trees[label]}): the run failed:\n"
                                   f"{done.stderr[-2000:]}")
            record = {"tree": label, "round": round_, "load": round(load, 2),
                      **json.loads(done.stdout.strip().splitlines()[-1])}
            runs.append(record)
            say(f"round {round_} {label}: {record['frames_per_second']:.1f} frames/s, "
                f"{record['cpu_ms_per_frame']:.0f} CPU ms per frame, right mask "
                f"{record['placement']['right']}/{record['placement']['needed']}")
    return runs


def summarise_speed(runs: Sequence[dict[str, Any]], old: str, new: str) -> dict[str, Any]:
    """Per tree the medians over rounds, and per round the new/old ratios (same round, so
    under about the same load)."""
    figures = ("frames_per_second", "cpu_ms_per_frame", "analyse_cpu_ms_per_frame",
               "render_cpu_ms_per_frame", "analyse_s", "render_s")
    trees = {}
    for label in (old, new):
        mine = [r for r in runs if r["tree"] == label]
        trees[label] = {f: statistics.median(r[f] for r in mine) for f in figures}
        trees[label]["right"] = [r["placement"]["right"] for r in mine]
        trees[label]["needed"] = mine[0]["placement"]["needed"]
        trees[label]["wrong_frames"] = max(r["placement"]["wrong_frames"] for r in mine)
        trees[label]["landmark_error"] = statistics.median(
            r["placement"]["landmark_error"] for r in mine)
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["tree"]] = r
    ratios = [{"round": k, "fps_new_over_old": pair[new]["frames_per_second"]
               / pair[old]["frames_per_second"],
               "cpu_new_over_old": pair[new]["cpu_ms_per_frame"] / pair[old]["cpu_ms_per_frame"]}
              for k, pair in sorted(by_round.items())]
    return {"trees": trees, "ratios": ratios,
            "median_fps_ratio": statistics.median(r["fps_new_over_old"] for r in ratios),
            "median_cpu_ratio": statistics.median(r["cpu_new_over_old"] for r in ratios)}


def speed_markdown(result: dict[str, Any], command: str) -> str:
    """The ``video-speed`` section of docs/BENCHMARKS.md."""
    s = result["summary"]
    rows = []
    for label in s["trees"]:
        t = s["trees"][label]
        rows.append([f"{label} ({result['trees'][label]})", f"{t['frames_per_second']:.1f}",
                     f"{t['cpu_ms_per_frame']:.0f}", f"{t['analyse_cpu_ms_per_frame']:.0f}",
                     f"{t['render_cpu_ms_per_frame']:.0f}",
                     f"{t['analyse_s']:.1f} / {t['render_s']:.1f}",
                     f"{', '.join(map(str, t['right']))} of {t['needed']}",
                     t["wrong_frames"], f"{t['landmark_error']:.2f}"])
    table = markdown_table(["code", "frames/s", "CPU ms per frame", "analyse CPU ms/frame",
                            "render CPU ms/frame", "analyse / render s", "right mask (per run)",
                            "frames with a wrong mask", "landmark error px"], rows)
    width, height = result["frame_size"]
    loads = ", ".join(f"{r['load']:.1f}" for r in result["runs"])
    return (
        f"## Video speed: old and new `cloak video` code, same clip, same run\n\n"
        f"`{command}`: the video benchmark's first clip ({' + '.join(result['labels'])}, "
        f"{result['frames']} frames, {width}x{height} at {result['fps']} fps), protected by "
        f"each code tree in turn ({result['rounds']} rounds, the order swapped every round), "
        f"threads per video: {result['threads'] or 'all cores'}, torch on one thread per "
        f"helper (as `cloak video`); per run: one warm-up protection, then one timed "
        f"(`evaluation/video/speed.py`). Medians over the rounds; CPU time is the process's "
        f"(all threads) and is less sensitive to the other jobs on this shared 2-core CPU "
        f"({result['cpu']}) than wall time (1-minute load before each run: {loads}).\n\n"
        f"{table}\n\n"
        f"- new / old, same round (median): frames/s x{s['median_fps_ratio']:.2f}, CPU time "
        f"per frame x{s['median_cpu_ratio']:.2f}\n"
        f"- 25 frames/s on 2 cores needs at most 80 CPU ms per frame with both cores free "
        f"and busy all the time\n")

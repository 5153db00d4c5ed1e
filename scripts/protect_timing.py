"""Time `cloak protect` end to end on 10 LFW photos of one person, and measure image quality.

Two runs of the real command line (fresh processes, models loaded from the cache):

1. ``cloak protect <10 photos> --mode M`` learns the person's mask and writes the protected
   copies: wall seconds of the whole command and the pipeline's own split (mask learning, the
   per-photo work of reading, finding faces, protecting and writing);
2. ``cloak protect <same photos> --mask <the mask>`` only applies the existing mask: wall
   seconds and seconds per photo;

both as shipped and (``--compare``, the default) with ``--terms none`` (OPOM's objective alone,
the masks before the anti-linkage and view terms), so the cost of the terms is a same-run
ratio; each ``--vs LABEL=ARGS`` adds a variant with those extra ``cloak protect`` arguments
(e.g. ``--vs "bfloat16=--precision bfloat16"``), also as a same-run ratio.

Then PSNR, SSIM and L-inf of every written photo against its original (8-bit pixels as written,
JPEG quality 95, :mod:`cloak.quality`). Writes JSON (``--out``) and the ``protect-timing``
section of docs/BENCHMARKS.md.

    python scripts/protect_timing.py                      # balanced mode, Colin_Powell, 2 threads
    python scripts/protect_timing.py --mode fast --person George_W_Bush
    python scripts/protect_timing.py --vs "bfloat16=--precision bfloat16"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cloak.quality import photo_quality
from evaluation.paths import DEFAULT_LFW, REPO
from evaluation.protocol.lfw import load_rgb
from evaluation.report import command_variants, markdown_table, write_json, write_markdown_section


def _run(args: list[str], threads: int) -> tuple[dict[str, Any], float]:
    """Run ``cloak protect ARGS --json``; return its JSON summary and the wall seconds."""
    command = [sys.executable, "-m", "cloak.cli", "protect", *args, "--json", "--quiet",
               "--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), wall


def _quality(summary: dict[str, Any]) -> list[dict[str, float]]:
    rows = []
    for entry in summary["files"]:
        q = photo_quality(load_rgb(Path(entry["input"])), load_rgb(Path(entry["output"])))
        rows.append({"psnr": q.psnr, "ssim": q.ssim, "linf": q.linf})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--mode", choices=["fast", "balanced", "strong"], default="balanced")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True,
                        help="also learn with --terms none (the OPOM objective alone) in the "
                             "same run and report the learning-time ratio")
    parser.add_argument("--vs", action="append", default=[], metavar="LABEL=ARGS",
                        help="another variant: LABEL and the extra cloak protect arguments "
                             "(repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" /
                        "protect_timing.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()

    sources = sorted((args.lfw / "identities" / args.person).glob("*.jpg"))[:args.photos]
    if len(sources) < args.photos:
        raise SystemExit(f"{args.lfw}/identities/{args.person}: fewer than {args.photos} photos")
    variants = [("none", ["--terms", "none"]), ("shipped", [])] if args.compare else [
        ("shipped", [])]
    variants += command_variants(args.vs, dict(variants)).items()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cloak-timing-") as tmp:
        folder = Path(tmp) / args.person
        folder.mkdir()
        for path in sources:
            shutil.copy2(path, folder / path.name)
        for label, extra in variants:
            learned, learn_wall = _run([str(folder), "-o", str(Path(tmp) / f"learned-{label}"),
                                        "--mode", args.mode, *extra], args.threads)
            mask = learned["mask"]["path"]
            applied, apply_wall = _run([str(folder), "-o", str(Path(tmp) / f"applied-{label}"),
                                        "--mask", mask], args.threads)
            runs[label] = {
                "args": extra,
                "learn_run": {"wall_s": learn_wall, "learn_s": learned["mask"]["learn_seconds"],
                              "per_photo_s": [f["seconds"] for f in learned["files"]],
                              "statuses": [f["status"] for f in learned["files"]]},
                "apply_run": {"wall_s": apply_wall,
                              "per_photo_s": [f["seconds"] for f in applied["files"]],
                              "statuses": [f["status"] for f in applied["files"]]},
                "quality": _quality(learned)}
    result = {
        "command": shlex.join(["python", "scripts/protect_timing.py", *sys.argv[1:]]),
        "person": args.person, "photos": len(sources), "mode": args.mode,
        "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0], "runs": runs,
    }
    if "none" in runs:
        result["learn_ratio_shipped_vs_none"] = (runs["shipped"]["learn_run"]["learn_s"]
                                                 / runs["none"]["learn_run"]["learn_s"])
    shipped_s = runs["shipped"]["learn_run"]["learn_s"]
    result["learn_ratio_shipped_vs"] = {label: shipped_s / run["learn_run"]["learn_s"]
                                        for label, run in runs.items()
                                        if label not in ("shipped", "none")}
    write_json(args.out, result)
    rows = []
    for label, run in runs.items():
        quality, per_photo = run["quality"], run["apply_run"]["per_photo_s"]
        ssim = [q["ssim"] for q in quality]
        name = (f"{args.mode}, --terms none (OPOM objective alone)" if label == "none"
                else f"{args.mode} (as shipped)" if label == "shipped"
                else f"{args.mode}, {' '.join(run['args'])}")
        rows.append([name, f"{run['learn_run']['wall_s']:.1f}",
                     f"{run['learn_run']['learn_s']:.1f}", f"{run['apply_run']['wall_s']:.1f}",
                     f"{np.mean(per_photo):.3f}", f"{max(per_photo):.3f}",
                     f"{np.mean([q['psnr'] for q in quality]):.1f}", f"{np.mean(ssim):.3f}",
                     f"{min(ssim):.3f}", f"{max(q['linf'] for q in quality):.0f}"])
    ratio = ("" if "none" not in runs else
             f"\n\nLearning time as shipped / OPOM objective alone, same run: "
             f"{result['learn_ratio_shipped_vs_none']:.2f}x.") + "".join(
        f"\n\nLearning time as shipped / with `{' '.join(runs[label]['args'])}`, same run: "
        f"{vs:.2f}x." for label, vs in result["learn_ratio_shipped_vs"].items())
    body = (f"## Time and quality of `cloak protect` ({len(sources)} LFW photos)\n\n"
            f"`{result['command']}`: {len(sources)} photos of {args.person} (250x250 JPEG), "
            f"fresh `cloak protect` processes with {args.threads} torch threads on a "
            f"{os.cpu_count()}-core CPU (load average {result['load_average_before']:.1f} before "
            "the run). 'learn run' = the whole command that learns the mask and writes the "
            "copies; 'apply run' = `--mask` on the same photos; per-photo seconds = read, find "
            "faces, protect, write (JPEG quality 95). Quality of the written photos against the "
            "originals.\n\n" + markdown_table(
                ["mode", "learn run s (wall)", "of which learning s", "apply run s (wall)",
                 "apply s/photo (mean)", "apply s/photo (max)", "PSNR dB", "SSIM (mean)",
                 "SSIM (min)", "L-inf max"], rows) + ratio + "\n")
    write_markdown_section(args.markdown, "protect-timing", body)
    print(body)


if __name__ == "__main__":
    main()

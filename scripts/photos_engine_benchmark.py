"""Time `cloak protect --engine local` and `--engine dask` on a folder of 200 photos of 3 people.

The folder (copies in a temporary folder): each person's LFW photos, their mirror images, and
enough of the photos enlarged 1.5x to reach ``--photos`` (LFW holds at most 30 photos of anyone).
One mask is learned once (``cloak enroll --mode fast`` on the first person's first 10 photos);
both runs apply it with ``--mask --all-faces``, so every photo is written and the comparison is
about the per-photo work (read, find faces, paste, write). Fresh `cloak protect` processes with
the same torch threads; the Dask run starts a local cluster of ``--workers`` worker processes.
Every file of the two output folders (photos, progress file) is compared byte for byte.
Writes JSON (``--out``) and the ``photos-engine`` section of docs/BENCHMARKS.md.

    python scripts/photos_engine_benchmark.py        # 200 photos, 1 thread, 2 workers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from evaluation.paths import DEFAULT_LFW, REPO
from evaluation.report import markdown_table, publish

PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")


def build_folder(lfw: Path, folder: Path, photos: int) -> dict[str, int]:
    """``photos`` photos of :data:`PEOPLE` in ``folder``: originals, mirror images, enlarged
    copies, about as many of each person; returns photos per person."""
    per_person = {p: photos // len(PEOPLE) + (k < photos % len(PEOPLE))
                  for k, p in enumerate(PEOPLE)}
    for person, count in per_person.items():
        sources = sorted((lfw / "identities" / person).glob("*.jpg"))
        variants = [("", s) for s in sources] + [("mirror", s) for s in sources]
        variants += [("large", s) for s in sources]
        if len(variants) < count:
            raise SystemExit(f"{lfw}/identities/{person}: too few photos for {count}")
        for kind, source in variants[:count]:
            dest = folder / (f"{source.stem}_{kind}.jpg" if kind else source.name)
            if not kind:
                shutil.copy2(source, dest)
                continue
            with Image.open(source) as image:
                changed = (ImageOps.mirror(image) if kind == "mirror" else
                           image.resize((image.width * 3 // 2, image.height * 3 // 2),
                                        Image.Resampling.BICUBIC))
                changed.save(dest, quality=95)
    return per_person


def cloak_json(*args: str | Path) -> dict[str, Any]:
    """The JSON summary of ``cloak ARGS --json --quiet`` run in a fresh process."""
    command = [sys.executable, "-m", "cloak.cli", *map(str, args), "--json", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each run (and of each Dask worker task)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "photos_engine.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()

    threads = ("--threads", str(args.threads))
    load_before = os.getloadavg()[0]
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cloak-photos-engine-") as tmp:
        root = Path(tmp)
        folder = root / "photos"
        folder.mkdir()
        per_person = build_folder(args.lfw, folder, args.photos)
        mask = root / f"{PEOPLE[0]}.cloak"
        start = time.perf_counter()
        learned = cloak_json("enroll", PEOPLE[0],
                             *sorted((args.lfw / "identities" / PEOPLE[0]).glob("*.jpg"))[:10],
                             "-o", mask, "--mode", "fast", *threads)
        learn_wall = time.perf_counter() - start
        for engine in ("local", "dask"):
            start = time.perf_counter()
            summary = cloak_json("protect", folder, "-o", root / engine, "--mask", mask,
                                 "--all-faces", "--engine", engine, "--workers",
                                 str(args.workers), *threads)
            runs[engine] = {"wall_s": time.perf_counter() - start, "totals": summary["totals"]}
        local, dask = files(root / "local"), files(root / "dask")
        differing = sorted(n for n in set(local) | set(dask) if local.get(n) != dask.get(n))
    command = " ".join(["python scripts/photos_engine_benchmark.py", *sys.argv[1:]])
    result = {
        "people": per_person, "photos": args.photos, "threads": args.threads,
        "workers": args.workers, "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_average_before": load_before,
        "learn": {"wall_s": learn_wall, "learn_s": learned["mask"]["learn_seconds"]},
        "runs": runs, "files_compared": len(local), "files_differing": differing,
        "speedup_dask_vs_local": runs["local"]["wall_s"] / runs["dask"]["wall_s"],
    }
    rows = [[engine, f"{run['wall_s']:.1f}", str(run["totals"].get("protected", 0)),
             str(run["totals"].get("failed", 0))] for engine, run in runs.items()]
    body = (f"## Photo archives on the Dask engine: `cloak protect --engine dask`\n\n"
            f"`{command}`: {args.photos} photos of {len(PEOPLE)} people "
            f"({', '.join(f'{p} {n}' for p, n in per_person.items())}: LFW originals, their "
            "mirror images and copies enlarged 1.5x), one mask learned once (`cloak enroll "
            f"--mode fast`, {learn_wall:.0f} s) and applied by both runs with `--mask "
            f"--all-faces`, so every photo is read, scanned, masked and written. Fresh `cloak "
            f"protect` processes, {args.threads} torch thread(s) per run and per worker task; "
            f"the Dask run starts a local cluster of {args.workers} worker processes (its "
            "start and the workers' model loading are in its wall time). Measured in one run "
            f"on a shared {os.cpu_count()}-core CPU (load average {load_before:.1f} before the "
            "run; other jobs were running), so the times are indicative.\n\n"
            + markdown_table(["engine", "wall s", "protected", "failed"], rows)
            + f"\n\nDask / local wall time: {1 / result['speedup_dask_vs_local']:.2f}. Files of "
            f"the two output folders compared byte for byte (photos, progress file): "
            f"{len(local)}; "
            f"differing: {len(differing)}.\n")
    print(publish(result, body, args.out, args.markdown, command, "photos-engine"))


if __name__ == "__main__":
    main()

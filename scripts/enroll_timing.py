"""Time ``cloak enroll`` end to end on LFW photos of one person, as shipped and with other
arguments, in one run.

Each round runs every variant once as a fresh ``cloak enroll NAME <photos> -o <mask> --json``
process (CLI start, model loading from the cache, face finding and learning: what a user waits
for), the order of the variants reversed every other round, so that each round's ratio to the
shipped command is taken on the machine as it was then. Reports per variant the median wall
seconds and learning seconds (the command's own JSON) over the rounds, and the median of the
rounds' ratios "variant / shipped".

Writes JSON and the markdown section "enroll-timing" of docs/BENCHMARKS.md.

    python scripts/enroll_timing.py --vs "all photos per step=--photos-per-step 0"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.paths import DEFAULT_LFW, REPO
from evaluation.report import command_variants, markdown_table, publish


def _enroll(photos: list[Path], mask: Path, extra: list[str], threads: int) -> tuple[float, float]:
    """Run ``cloak enroll``; return its wall seconds and the learning seconds it reports."""
    command = [sys.executable, "-m", "cloak.cli", "enroll", "Person", *map(str, photos),
               "-o", str(mask), "--force", "--json", "--quiet", "--threads", str(threads),
               *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return wall, float(json.loads(done.stdout)["mask"]["learn_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vs", action="append", default=[], metavar="LABEL=ARGS",
                        help="another variant: LABEL and its extra cloak enroll arguments "
                             "(repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" /
                        "enroll_timing.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()

    photos = sorted((args.lfw / "identities" / args.person).glob("*.jpg"))[:args.photos]
    if len(photos) < args.photos:
        raise SystemExit(f"{args.lfw}/identities/{args.person}: fewer than {args.photos} photos")
    variants = {"shipped": [], **command_variants(args.vs, ["shipped"])}
    loads, runs = [], {label: {"wall_s": [], "learn_s": []} for label in variants}
    with tempfile.TemporaryDirectory(prefix="cloak-enroll-timing-") as tmp:
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for label in order:
                loads.append(os.getloadavg()[0])
                wall, learn = _enroll(photos, Path(tmp) / f"{label}.cloak", variants[label],
                                      args.threads)
                runs[label]["wall_s"].append(wall)
                runs[label]["learn_s"].append(learn)
    ratios = {label: {key: statistics.median(a / b for a, b in zip(
                  runs[label][key], runs["shipped"][key], strict=True))
                      for key in ("wall_s", "learn_s")}
              for label in variants if label != "shipped"}
    result = {"person": args.person, "photos": len(photos), "threads": args.threads,
              "rounds": args.rounds, "variants": variants, "runs": runs,
              "ratio_to_shipped": ratios, "load_average_before_runs": loads,
              "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    command = shlex.join(["python", "scripts/enroll_timing.py", *sys.argv[1:]])
    rows = [[label if not extra else f"{label} ({shlex.join(extra)})",
             f"{statistics.median(runs[label]['wall_s']):.1f}",
             f"{statistics.median(runs[label]['learn_s']):.1f}",
             "1.00" if label == "shipped" else f"{ratios[label]['wall_s']:.2f}",
             "1.00" if label == "shipped" else f"{ratios[label]['learn_s']:.2f}"]
            for label, extra in variants.items()]
    body = "\n".join([
        "## Time of `cloak enroll` (LFW photos)", "",
        f"`{command}`: `cloak enroll` on the first {len(photos)} photos of {args.person} "
        f"(default mode, {args.threads} torch threads), each variant a fresh process, "
        f"{args.rounds} rounds, the order reversed every other round, on a "
        f"{os.cpu_count()}-core CPU ({result['cpu']}; 1-minute load before each run: "
        f"{', '.join(f'{x:.1f}' for x in loads)}). Wall = the whole command (start, model "
        "loading, face finding, learning, writing the mask); learning = the command's own "
        "figure. Medians over the rounds; ratios = the median of each round's variant / "
        "shipped.", "",
        markdown_table(["variant", "wall s", "learning s", "wall / shipped",
                        "learning / shipped"], rows)])
    print(publish(result, body, args.out, args.markdown, command, "enroll-timing"))


if __name__ == "__main__":
    main()

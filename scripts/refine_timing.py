"""What ``--refine`` costs per face, by the number of DI draws averaged per step, in one run.

Finds one face in each of the first ``--photos`` LFW photos of a person (as ``cloak protect``
finds them; 8 is one ``--refine`` batch), loads the mode's surrogates once, runs one short
warm-up refinement, then times :func:`cloak.opom.refine_jointly` as ``cloak protect --refine``
calls it (:data:`cloak.masking.REFINE`: pushed from the center of the faces' clean features,
anti-linkage on, SI and NI) with each ``--draws`` value in turn, round after round, so that
each round's ratio to one draw is taken on the machine as it was then. The refinement starts
from a zero mask: its cost does not depend on the mask's values.

Writes JSON and the markdown section "refine-timing" of docs/BENCHMARKS.md.

    python scripts/refine_timing.py --person Colin_Powell --photos 8 --steps 10 --draws 1,3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
from learn_profile import REPO, training_faces

import attackers
from attackers.frame import FRAME_SIZE
from cloak.masking import REFINE
from cloak.opom import MODES, protected_features, refine_jointly
from evaluation.report import markdown_table, publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--mode", default="balanced")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--draws", default=f"1,{REFINE.draws}",
                        help="comma-separated DI draws per step; the first is the reference")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "refine_timing.json")
    args = parser.parse_args()
    draws = [int(d) for d in args.draws.split(",")]

    mode = MODES[args.mode]
    faces = training_faces(args.person, args.photos)
    surrogates = [attackers.load(name) for name in mode.surrogates]
    person = protected_features(faces, None, surrogates, mode.config)
    zero = torch.zeros(3, FRAME_SIZE, FRAME_SIZE)

    def refine(count: int, steps: int) -> float:
        start = time.perf_counter()
        refine_jointly(faces, zero, surrogates, mode.config, steps, person=person,
                       recipe=dataclasses.replace(REFINE, draws=count))
        return time.perf_counter() - start

    refine(1, 1)                                      # warm-up: allocator, kernels
    seconds: dict[int, list[float]] = {d: [] for d in draws}
    for _ in range(args.rounds):
        for count in draws:
            seconds[count].append(refine(count, args.steps))
    per_face = {d: statistics.median(s) / len(faces) for d, s in seconds.items()}
    ratios = {d: statistics.median(a / b for a, b in zip(s, seconds[draws[0]], strict=True))
              for d, s in seconds.items()}
    command = " ".join(["python scripts/refine_timing.py", *sys.argv[1:]])
    result = {"person": args.person, "photos": len(faces), "mode": args.mode,
              "surrogates": list(mode.surrogates), "steps": args.steps,
              "threads": torch.get_num_threads(), "rounds": args.rounds,
              "seconds": {str(d): s for d, s in seconds.items()},
              "seconds_per_face": {str(d): s for d, s in per_face.items()},
              "ratio_to_first": {str(d): r for d, r in ratios.items()}}
    rows = [[d, per_face[d], ratios[d], "(shipped)" if d == REFINE.draws else ""]
            for d in draws]
    table = markdown_table(["DI draws per step", "seconds per face (median)",
                            f"ratio to {draws[0]} draw(s) (median of rounds)", ""], rows)
    body = (f"## What `--refine` costs per face, by DI draws per step\n\n"
            f"`{command}`: `refine_jointly` on {len(faces)} faces of {args.person} together "
            f"(one `--refine` batch), mode {args.mode} ({', '.join(mode.surrogates)}), "
            f"{args.steps} steps, pushed from the faces' center with anti-linkage, SI and NI, "
            f"{torch.get_num_threads()} threads, {args.rounds} rounds alternating the draws "
            f"(after a warm-up):\n\n{table}\n")
    print(publish(result, body, args.out, args.markdown, command, "refine-timing"))


if __name__ == "__main__":
    main()

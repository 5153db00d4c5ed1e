"""Zoo benchmark: detection rate and leave-one-out rank-1 identification on LFW identities.

Thin entry point over :func:`evaluation.zoo.run_zoo_benchmark` (read its docstring). Writes JSON
(``--out``) and the ``zoo`` section of ``docs/BENCHMARKS.md``; ``cloak benchmark zoo`` does the
same.

    python scripts/zoo_benchmark.py                       # all 62 people x 30 photos
    python scripts/zoo_benchmark.py --people 5 --per-person 10 --models sface  # quick look
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.paths import DEFAULT_LFW, REPO
from evaluation.zoo import THRESHOLDS, run_zoo_benchmark, write_report


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

    result = run_zoo_benchmark(args.lfw, args.people, args.per_person, args.models, args.batch)
    command = " ".join(["python scripts/zoo_benchmark.py", *sys.argv[1:]])
    print(write_report(result, args.out, args.markdown, command))


if __name__ == "__main__":
    main()

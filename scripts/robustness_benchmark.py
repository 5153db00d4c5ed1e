"""Robustness benchmark of universal OPOM masks: transforms, purifiers, attacks, baseline.

Also: other matching directions, verification thresholds, the mask-estimation attack, and the
per-photo baseline.

Thin entry point over :func:`evaluation.robustness.run.run_robustness` (read
:mod:`evaluation.robustness` for the protocol); ``cloak benchmark robustness`` runs the same.
Writes JSON (``--out``) and the ``robustness`` section of ``docs/BENCHMARKS.md``.

    python scripts/robustness_benchmark.py                       # 62 identities, folds A and B
    python scripts/robustness_benchmark.py --limit 2 --loo one   # quick look (a few minutes)
    python scripts/robustness_benchmark.py --eot --section robustness-eot   # the robust option
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from cloak.opom import MODES
from evaluation.mask_attacks import DENOISERS
from evaluation.opom.settings import BenchmarkSettings
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, REPO
from evaluation.protocol.folds import FOLD_PLANS
from evaluation.robustness.report import write_report
from evaluation.robustness.run import run_robustness
from evaluation.robustness.settings import KS, PURIFIERS, TRANSFORMS, RobustnessSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--limit", type=int, default=None, help="first N identities only")
    parser.add_argument("--person", nargs="+", default=None, help="only these identities")
    parser.add_argument("--distractors", type=int, default=None,
                        help="first N distractor photos only (default: all)")
    parser.add_argument("--loo", choices=list(FOLD_PLANS), default="two",
                        help="leave-one-out plan: one (fold A), two (A+B), full (one per model)")
    parser.add_argument("--mode", choices=list(MODES), default="fast")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eps", type=float, default=None, help="L-inf budget in pixel levels")
    parser.add_argument("--eot", action=argparse.BooleanOptionalAction, default=None,
                        help="learn masks through random real-world transforms (mode default)")
    parser.add_argument("--transforms", nargs="+", choices=TRANSFORMS + PURIFIERS,
                        default=list(TRANSFORMS + PURIFIERS),
                        help="transform and purifier conditions ('none' is always run)")
    parser.add_argument("--jitter-px", type=float, default=2.0,
                        help="landmark jitter of the jitter condition, photo pixels")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS),
                        help="protected photos the mask-estimation attacker holds")
    parser.add_argument("--denoisers", nargs="+", choices=list(DENOISERS),
                        default=list(DENOISERS))
    parser.add_argument("--fars", type=float, nargs="+", default=[1e-2, 1e-3],
                        help="false-accept rates of the verification thresholds")
    parser.add_argument("--no-baseline", action="store_true", help="skip the per-photo baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "robustness.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", default="robustness", help="markdown section to replace")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transforms = tuple(t for t in TRANSFORMS + PURIFIERS if t in {"none", *args.transforms})
    settings = RobustnessSettings(
        opom=BenchmarkSettings(
            lfw=args.lfw, limit=args.limit,
            people=None if args.person is None else tuple(args.person),
            distractors=args.distractors, conditions=("convex",), loo=args.loo, mode=args.mode,
            steps=args.steps, eps=args.eps, eot=args.eot, seed=args.seed, cache_dir=args.cache,
            progress=not args.quiet),
        transforms=transforms, jitter_px=args.jitter_px, ks=tuple(args.ks),
        denoisers=tuple(args.denoisers), fars=tuple(args.fars), baseline=not args.no_baseline)
    result = run_robustness(settings, log_line=tqdm.write)
    command = " ".join(["python scripts/robustness_benchmark.py", *sys.argv[1:]])
    print(write_report(result, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

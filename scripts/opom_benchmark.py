"""OPOM benchmark: protection success rate of per-person masks against unseen recognizers on LFW.

Thin entry point over :func:`evaluation.opom.run.run_benchmark` (read :mod:`evaluation.opom` for the
protocol and :mod:`evaluation.protocol.folds` for the leave-one-out folds). Writes JSON (``--out``)
and the ``opom`` section of ``docs/BENCHMARKS.md``; ``cloak benchmark opom`` runs the same.

    python scripts/opom_benchmark.py                          # 62 identities, folds A and B
    python scripts/opom_benchmark.py --limit 3 --loo one --steps 10   # quick look
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from cloak.opom import MODES
from evaluation.opom.conditions import CONDITIONS, DEFAULT_CONDITIONS
from evaluation.opom.report import write_report
from evaluation.opom.run import run_benchmark
from evaluation.opom.settings import DEFAULT_REFINE_STEPS, BenchmarkSettings
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, REPO
from evaluation.protocol.folds import FOLD_PLANS, with_extra_surrogates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--limit", type=int, default=None, help="first N identities only")
    parser.add_argument("--distractors", type=int, default=None,
                        help="first N distractor photos only (default: all)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS,
                        default=list(DEFAULT_CONDITIONS),
                        help="default: clean, noise, convex (the shipped mask)")
    parser.add_argument("--refine-steps", type=int, default=DEFAULT_REFINE_STEPS,
                        help="refine: per-probe steps after the convex mask")
    parser.add_argument("--loo", choices=list(FOLD_PLANS), default="two",
                        help="leave-one-out plan: one (fold A), two (A+B), full (one per model)")
    parser.add_argument("--extra-surrogates", nargs="+", default=[], metavar="MODEL",
                        help="more white boxes (e.g. faceres-deep mobileface) for every fold "
                             "that tests no model of their family")
    parser.add_argument("--mode", choices=list(MODES), default="balanced",
                        help="optimiser preset (default: balanced, what cloak protect ships)")
    parser.add_argument("--person", action="append", default=None,
                        help="only this identity (repeat for several)")
    parser.add_argument("--n-train", type=int, default=10,
                        help="photos per person that learn the mask (1 = one-photo enrolment)")
    parser.add_argument("--linkage", type=float, default=None,
                        help="anti-linkage weight of the shipped mask (mode default)")
    parser.add_argument("--views", action=argparse.BooleanOptionalAction, default=None,
                        help="learn on random views of the training photos (mode default)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eps", type=float, default=None, help="L-inf budget in pixel levels")
    parser.add_argument("--step-size", type=float, default=None, help="pixel levels per step")
    parser.add_argument("--feather", type=float, default=None, help="mask fade width, frame px")
    parser.add_argument("--momentum", type=float, default=None)
    parser.add_argument("--diversity", type=float, default=None)
    parser.add_argument("--ti-kernel", type=int, default=None)
    parser.add_argument("--paste", choices=["photo", "frame"], default=None,
                        help="the optimiser's view of the mask")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                        help="scale each surrogate's gradient to unit mean |g| (mode default)")
    parser.add_argument("--eot", action=argparse.BooleanOptionalAction, default=None,
                        help="learn through random blur/resize/JPEG (mode default)")
    parser.add_argument("--paste-mode", choices=["bilinear", "nearest"], default="bilinear",
                        help="resampling of the mask into the probe photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "opom_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", default="opom", help="markdown section to replace")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = BenchmarkSettings(
        lfw=args.lfw, limit=args.limit, distractors=args.distractors,
        conditions=tuple(c for c in CONDITIONS if c in args.conditions), loo=args.loo,
        folds=(with_extra_surrogates(FOLD_PLANS[args.loo], args.extra_surrogates)
               if args.extra_surrogates else None),
        mode=args.mode, steps=args.steps, eps=args.eps, step_size=args.step_size,
        feather=args.feather, momentum=args.momentum,
        diversity=args.diversity, ti_kernel=args.ti_kernel, paste=args.paste,
        balance=args.balance, eot=args.eot, linkage=args.linkage, views=args.views,
        paste_mode=args.paste_mode, people=tuple(args.person) if args.person else None,
        refine_steps=args.refine_steps, seed=args.seed, n_train=args.n_train,
        cache_dir=args.cache,
        progress=not args.quiet)
    result = run_benchmark(settings, log_line=tqdm.write)
    command = " ".join(["python scripts/opom_benchmark.py", *sys.argv[1:]])
    print(write_report(result, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

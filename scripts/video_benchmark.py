"""Video benchmark: speed, mask placement and per-frame / per-track PSR of `cloak video`.

Thin entry point over :func:`evaluation.video.run.run_video_benchmark` (read
:mod:`evaluation.video` for the clips, the leave-one-out fold and the attacker);
``cloak benchmark video`` runs the same. Writes JSON (``--out``) and the ``video``
section of ``docs/BENCHMARKS.md``.

    python scripts/video_benchmark.py --people 2 --seconds 2              # smoke run
    python scripts/video_benchmark.py --people 6 --seconds 8 --size 720p  # fuller run
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from cloak.opom import MODES
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, REPO
from evaluation.protocol.folds import BLACK_BOXES, FOLD_PLANS
from evaluation.video.report import write_report
from evaluation.video.run import run_video_benchmark
from evaluation.video.settings import SIZES, VideoBenchmarkSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--people", type=int, default=2,
                        help="enrolled identities (pairs make clips), the first by name")
    parser.add_argument("--names", nargs="+", default=None,
                        help="these LFW identities instead (paired in order)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--size", default="720p", help=f"{', '.join(SIZES)} or WxH")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--loo", choices=["fast", *FOLD_PLANS], default="fast",
                        help="fast: the fast preset's surrogates (facenet, dlib-resnet), the "
                             "other recognizers tested; or an OPOM benchmark fold plan")
    parser.add_argument("--tested", nargs="+", choices=list(BLACK_BOXES), default=None,
                        help="only these of the tested recognizers")
    parser.add_argument("--mode", choices=list(MODES), default="fast")
    parser.add_argument("--steps", type=int, default=None, help="override the mode's steps")
    parser.add_argument("--distractors", type=int, default=None,
                        help="first N distractor photos only (default: all)")
    parser.add_argument("--eval-every", type=int, default=5,
                        help="measure protection on every N-th frame")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per video (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "video_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", default="video", help="markdown section to replace")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = VideoBenchmarkSettings(
        lfw=args.lfw, people=args.people, names=tuple(args.names) if args.names else None,
        seconds=args.seconds, size=args.size, fps=args.fps, loo=args.loo,
        tested=tuple(args.tested) if args.tested else None, mode=args.mode, steps=args.steps,
        distractors=args.distractors, eval_every=args.eval_every, threads=args.threads,
        seed=args.seed, cache_dir=args.cache, progress=not args.quiet)
    try:
        result = run_video_benchmark(settings, log_line=tqdm.write)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    command = " ".join(["python scripts/video_benchmark.py", *sys.argv[1:]])
    print(write_report(result, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

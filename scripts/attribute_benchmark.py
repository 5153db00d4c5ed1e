"""Attribute benchmark: does a cloak hide sex, age and race better than a physical face mask?

Thin entry point over :func:`evaluation.attributes.run_attribute_benchmark` (the
package's docstring describes the protocol). Writes JSON (``--out``), the per-face records
beside it (``<out stem>.records.jsonl``) and the ``attributes`` section of ``docs/BENCHMARKS.md``.

    python scripts/attribute_benchmark.py                          # everything (hours)
    python scripts/attribute_benchmark.py --limit 20 --lfw-limit 2 --steps 5   # quick look
    python scripts/attribute_benchmark.py --datasets balanced --limit 60 --lfw-limit 0 \
        --conditions clean cloak cloak-attr --protect-attributes sex    # attribute-aware cloak
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from cloak.opom import ATTRIBUTES, MODES
from evaluation.attributes import (
    ALL_CONDITIONS,
    CONDITIONS,
    AttributeSettings,
    run_attribute_benchmark,
    write_report,
)
from evaluation.attributes.settings import PREDICTORS, UTK_DATASETS
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, DEFAULT_UTKFACE, REPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utkface", type=Path, default=DEFAULT_UTKFACE)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--datasets", nargs="*", choices=UTK_DATASETS, default=list(UTK_DATASETS),
                        help="UTKFace folders (none: LFW only)")
    parser.add_argument("--limit", type=int, default=None, help="faces per UTKFace folder")
    parser.add_argument("--lfw-limit", type=int, default=None,
                        help="LFW identities (0: no LFW part; default: all)")
    parser.add_argument("--conditions", nargs="+", choices=ALL_CONDITIONS,
                        default=list(CONDITIONS),
                        help="default: all but cloak-attr (the attribute-aware cloak)")
    parser.add_argument("--predictors", nargs="+", choices=list(PREDICTORS),
                        default=list(PREDICTORS))
    parser.add_argument("--mode", choices=list(MODES), default="fast")
    parser.add_argument("--steps", type=int, default=None, help="cloak optimiser steps")
    parser.add_argument("--pad", type=int, default=50, help="border around UTKFace chips, px")
    parser.add_argument("--pad-mode", choices=["constant", "replicate"], default="constant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protect-attributes", nargs="+", choices=ATTRIBUTES,
                        default=list(ATTRIBUTES), help="cloak-attr: attributes to hide")
    parser.add_argument("--attribute-weight", type=float, default=1.0,
                        help="cloak-attr: weight per attribute predictor (1 per recognizer)")
    parser.add_argument("--identity-recognizers", nargs="+", default=["sface", "mobilefacenet"],
                        help="cloak-attr: black-box recognizers of the identity cost")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "attribute_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", default="attributes", help="markdown section to replace")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = AttributeSettings(
        utkface=args.utkface, lfw=args.lfw, datasets=tuple(args.datasets), limit=args.limit,
        lfw_limit=args.lfw_limit,
        conditions=tuple(c for c in ALL_CONDITIONS if c in args.conditions),
        predictors=tuple(p for p in PREDICTORS if p in args.predictors), mode=args.mode,
        steps=args.steps, pad=args.pad, pad_mode=args.pad_mode, seed=args.seed,
        n_boot=args.n_boot, cache_dir=args.cache, progress=not args.quiet,
        protect_attributes=tuple(args.protect_attributes),
        attribute_weight=args.attribute_weight,
        identity_recognizers=tuple(args.identity_recognizers))
    result = run_attribute_benchmark(settings, log_line=tqdm.write)
    command = " ".join(["python scripts/attribute_benchmark.py", *sys.argv[1:]])
    print(write_report(result, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

"""Two conditions of one OPOM benchmark run, person by person: is B better than A?

Reads the JSON of a ``cloak benchmark opom`` run (``--out``) that holds both conditions for the
same people, or (``--b-run``) takes B from a second run of the same people and probes, e.g.
what a condition gave before and after the shipped settings changed. For each person and
direction (protected probe vs the clean gallery, and protected vs the person's other protected
probes: linkage), PSR@1 is the mean over the black boxes of the share of probes whose identity
is not top-1; the script reports the mean of B - A over the people with a 95% percentile
bootstrap interval over people (:func:`evaluation.protocol.ranks.bootstrap_interval`), how many
people B makes better, worse or leaves equal, and the difference per black box. Writes JSON and
a markdown section.

    python scripts/paired_conditions.py docs/results/opom_benchmark.json \
        refine-joint-train-center refine-joint-train-center-draws3 --section paired
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.paths import REPO
from evaluation.protocol.ranks import bootstrap_interval
from evaluation.report import markdown_table, publish

DIRECTIONS = {"ranks": "PSR@1 (vs the clean gallery)",
              "linkage": "protected-vs-protected PSR@1 (linkage)"}


def person_psr(entry: dict[str, Any], key: str) -> dict[str, float]:
    """PSR@1 per black box of one person's condition entry, in direction ``key``."""
    return {name: float(np.mean(np.asarray(ranks) >= 1)) for name, ranks in entry[key].items()}


def paired(pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str,
           n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """B - A in direction ``key`` over (A entry, B entry) pairs, one per person: mean over
    people, its interval, counts, per black box."""
    per_box: dict[str, list[float]] = {}
    diffs = []
    for entries in pairs:
        psr_a, psr_b = (person_psr(entry, key) for entry in entries)
        for name in psr_a:
            per_box.setdefault(name, []).append(psr_b[name] - psr_a[name])
        diffs.append(np.mean(list(psr_b.values())) - np.mean(list(psr_a.values())))
    values = np.asarray(diffs)
    low, high = bootstrap_interval(values, n_boot=n_boot, seed=seed)
    return {"mean": float(values.mean()), "ci": [low, high],
            "better": int((values > 1e-9).sum()), "worse": int((values < -1e-9).sum()),
            "equal": int((np.abs(values) <= 1e-9).sum()),
            "per_black_box": {n: float(np.mean(v)) for n, v in per_box.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="JSON of a cloak benchmark opom run")
    parser.add_argument("a", help="the reference condition")
    parser.add_argument("b", help="the condition compared with it")
    parser.add_argument("--section", default="paired")
    parser.add_argument("--title", default=None, help="the section's heading (default: B vs A)")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: not written)")
    parser.add_argument("--b-run", type=Path, default=None,
                        help="take B from this run (the same people and probes) instead")
    args = parser.parse_args()

    run = json.loads(args.run.read_text())
    other = run if args.b_run is None else json.loads(args.b_run.read_text())
    b_of = {r["person"]: r for r in other["identities"] if args.b in r["conditions"]}
    identities = [r for r in run["identities"] if args.a in r["conditions"] and r["person"] in b_of]
    if not identities:
        raise SystemExit(f"no person has both {args.a} and {args.b}")
    changed = [r["person"] for r in identities if r["probes"] != b_of[r["person"]]["probes"]]
    if changed:
        raise SystemExit(f"the two runs' probes differ for {', '.join(changed)}")
    pairs = [(r["conditions"][args.a], b_of[r["person"]]["conditions"][args.b])
             for r in identities]
    result = {"run": str(args.run), "b_run": str(args.b_run or args.run), "a": args.a,
              "b": args.b, "people": len(identities),
              "directions": {k: paired(pairs, k) for k in DIRECTIONS}}
    boxes = list(result["directions"]["ranks"]["per_black_box"])
    rows = [[DIRECTIONS[k], f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]",
             f"{d['better']} / {d['worse']} / {d['equal']}",
             *(f"{d['per_black_box'][n]:+.3f}" for n in boxes)]
            for k, d in result["directions"].items()]
    table = markdown_table(["direction", f"{args.b} - {args.a}, mean over people [95%]",
                            "people better / worse / equal", *boxes], rows)
    command = shlex.join(["python", "scripts/paired_conditions.py", *sys.argv[1:]])
    title = args.title or f"{args.b} vs {args.a}, person by person"
    source = f"`{args.run.name}`" + ("" if args.b_run is None else
                                     f" (B from `{args.b_run.name}`)")
    body = (f"## {title}\n\n`{command}`: {len(identities)} people of {source}, "
            "each person's PSR@1 the mean over the black boxes; interval: percentile bootstrap "
            "over people "
            f"(2000 draws, seed 0).\n\n{table}\n")
    print(publish(result, body, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

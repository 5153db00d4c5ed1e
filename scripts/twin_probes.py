"""Which protected probes stay matched: those with a near-twin among the person's other photos?

Reads the JSON of a ``cloak benchmark opom`` run (``--out``). A probe's gallery holds the
person's other clean probes, so a probe whose clean photo is nearly the same as another probe's
(same event, same pose) has to move much further before the recognizer stops matching it. For
every tested black box this script embeds each person's clean probes again (the run's LFW folder
and split, checked against the probe names the run recorded), takes each probe's "twin
similarity" (the largest cosine between its clean feature and those of the person's other
probes) and reports, per condition, PSR@1 (protected probe vs the clean gallery, from the run's
ranks) in the four quarters of the probes ordered by that similarity, per black box. Writes
JSON and a markdown section.

    python scripts/twin_probes.py docs/results/opom_benchmark.json \
        --conditions convex,refine-joint-train-center-draws3-si-ni --section twin-probes
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.paths import REPO
from evaluation.protocol.folds import load_black_boxes
from evaluation.protocol.lfw import split_person
from evaluation.protocol.recognition import embed
from evaluation.report import markdown_table, publish

QUARTERS = 4


def twin_similarity(features: torch.Tensor) -> list[float]:
    """(P, D) features of one person's probes -> per probe, the largest cosine similarity to
    the other P - 1 (NaN rows, probes without a face, give NaN)."""
    z = torch.nn.functional.normalize(features.double(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-2.0)
    return sim.max(1).values.tolist()


def quarter_table(similarity: list[float], protected: list[bool]) -> list[dict[str, float]]:
    """Probes ordered by twin similarity, cut into :data:`QUARTERS` groups of (nearly) equal
    size: each group's similarity range and PSR@1."""
    order = np.argsort(np.asarray(similarity), kind="stable")
    out = []
    for part in np.array_split(order, QUARTERS):
        sims = [similarity[i] for i in part]
        out.append({"min": float(min(sims)), "max": float(max(sims)), "probes": len(part),
                    "psr": float(np.mean([protected[i] for i in part]))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="JSON of a cloak benchmark opom run")
    parser.add_argument("--conditions", required=True,
                        help="comma-separated conditions of the run to report")
    parser.add_argument("--section", default="twin-probes")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: not written)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--note", default="", help="a paragraph appended to the section")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import attackers

    run = json.loads(args.run.read_text())
    conditions = args.conditions.split(",")
    settings = run["settings"]
    boxes = [t for fold in run["folds"] for t in fold["tested"]]
    recognizers = load_black_boxes(boxes)
    detector = attackers.load("mtcnn")
    similarity: dict[str, list[float]] = {b: [] for b in boxes}
    protected: dict[str, dict[str, list[bool]]] = {c: {b: [] for b in boxes} for c in conditions}
    for record in run["identities"]:
        missing = [c for c in conditions if c not in record["conditions"]]
        if missing:
            raise SystemExit(f"{args.run}: {record['person']} has no {missing}")
        split, why, _ = split_person(Path(settings["lfw"]) / "identities" / record["person"],
                                     detector, settings["n_train"], settings["n_probe"])
        if split is None or [p.path.name for p in split.probes] != record["probes"]:
            raise SystemExit(f"{record['person']}: the probes differ from the run's ({why})")
        frames = [p.face.frame for p in split.probes]
        for b in boxes:
            similarity[b] += twin_similarity(embed(recognizers[b], frames))
            for c in conditions:
                protected[c][b] += [r > 0 for r in record["conditions"][c]["ranks"][b]]
    result: dict[str, Any] = {"run": str(args.run), "people": len(run["identities"]),
                              "quarters": {c: {b: quarter_table(similarity[b], protected[c][b])
                                               for b in boxes} for c in conditions}}
    sections = []
    for c in conditions:
        rows = [[b, *(f"{q['psr']:.3f} ({q['min']:.2f}-{q['max']:.2f})"
                      for q in result["quarters"][c][b])] for b in boxes]
        header = ["black box", *(f"quarter {k + 1}" for k in range(QUARTERS))]
        sections.append(f"`{c}`:\n\n{markdown_table(header, rows)}\n")
    command = shlex.join(["python", "scripts/twin_probes.py", *sys.argv[1:]])
    body = (f"## Which protected probes stay matched: PSR@1 by twin similarity\n\n`{command}`: "
            f"{result['people']} people of `{args.run.name}`. Per black box, the probes are "
            "ordered by their clean feature's largest cosine similarity to the person's other "
            "clean probes (which the gallery holds) and cut into quarters; each cell is the "
            "quarter's PSR@1 (protected probe vs the clean gallery) and, in brackets, its "
            "similarity range.\n\n" + "\n".join(sections)
            + (f"\n{args.note}\n" if args.note else ""))
    print(publish(result, body, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

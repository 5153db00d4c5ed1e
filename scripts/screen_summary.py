"""Side by side: several OPOM benchmark runs of one condition (a screen of optimiser levers).

Each ``LABEL=RUN.json`` is the JSON of a ``cloak benchmark opom`` run (same people, same
folds). Per run: PSR@1 of the condition per black box and its mean with the 95% interval, the
protected-vs-protected (linkage) PSR@1, SSIM and learn seconds per mask, each read from the
run's JSON. Writes JSON (the rows and the runs' commands) and a markdown section.

    python scripts/screen_summary.py base=base.json extra=extra.json --condition convex \
        --out docs/results/screen.json --section screen
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from evaluation.paths import REPO
from evaluation.report import markdown_table, publish


def run_row(label: str, data: dict[str, Any], condition: str) -> dict[str, Any]:
    """The screen's figures of one run: per black box, mean, linkage, SSIM, learn time."""
    summary = data["summary"][condition]
    return {"label": label, "command": data["command"],
            "psr1": {n: r["psr@1"] for n, r in summary["recognizers"].items()},
            "mean": summary["mean"]["psr@1"], "mean_ci": summary["mean"]["ci@1"],
            "linkage_mean": summary["linkage_mean"]["psr@1"],
            "linkage_ci": summary["linkage_mean"]["ci@1"],
            "ssim": summary["quality"]["ssim_mean"], "learn_s": summary["learn_s_per_mask"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH of a cloak benchmark opom JSON")
    parser.add_argument("--condition", default="convex")
    parser.add_argument("--title", default="Screen")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", required=True)
    parser.add_argument("--note", default="", help="a paragraph printed under the table")
    args = parser.parse_args()
    rows = []
    for item in args.runs:
        label, _, path = item.partition("=")
        if not path:
            parser.error(f"{item}: expected LABEL=PATH")
        rows.append(run_row(label, json.loads(Path(path).read_text(encoding="utf-8")),
                            args.condition))
    boxes = list(rows[0]["psr1"])
    table = markdown_table(
        ["run", *boxes, "mean [95%]", "protected-vs-protected mean [95%]", "SSIM", "learn s/mask"],
        [[r["label"], *(r["psr1"][b] for b in boxes),
          f"{r['mean']:.3f} [{r['mean_ci'][0]:.2f}, {r['mean_ci'][1]:.2f}]",
          f"{r['linkage_mean']:.3f} [{r['linkage_ci'][0]:.2f}, {r['linkage_ci'][1]:.2f}]",
          r["ssim"], r["learn_s"]]
         for r in rows])
    command = "python " + shlex.join(["scripts/screen_summary.py", *sys.argv[1:]])
    runs = "\n".join(f"- {r['label']}: `{r['command']}`" for r in rows)
    body = (f"## {args.title}\n\n`{command}`: condition `{args.condition}`, PSR@1 per black box "
            f"(protected probe vs clean gallery), from these runs:\n\n{runs}\n\n{table}\n\n"
            f"{args.note}\n")
    publish({"condition": args.condition, "runs": rows}, body, args.out, args.markdown,
            command, args.section)
    print(body)


if __name__ == "__main__":
    main()

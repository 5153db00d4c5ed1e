#!/usr/bin/env python3
"""Compare "before" and "after" benchmark JSON files key by key (did a change move a figure?).

Usage:
    python scripts/compare_results.py BEFORE_DIR AFTER_DIR [--names opom robustness attribute video]
        [--rtol 0] [--atol 0] [--max-print 60] [--show-ignored] [--out JSON]
        [--markdown docs/BENCHMARKS.md --section NAME --command TEXT]
    python scripts/compare_results.py BEFORE.json AFTER.json

For each name, <dir>/<name>.json is compared; <dir>/<name>.records.jsonl too where both exist
(attribute benchmark), records matched by (part, file) / person / line number.

Ignored (printed with --show-ignored): wall-clock and CPU timings (any key "seconds", "timing",
"stage_seconds", names ending in "_s", "_seconds", "_s_per_...", "seconds_per_...",
"..._per_second", "cpu_ms_per_frame", "real_time_ratio", "ratio_vs_amortised/applied";
settings.seconds/fps/threads
are settings and ARE compared), dates, the command line, host / CPU / versions, and paths (keys
cache_dir, lfw, utkface, folder, *_folder, and any string value starting with "/"; a path's
settings-digest folder name differs only if the cache key changed, which is not a result).

Numbers are compared exactly unless --rtol/--atol are given (bool and int compare exactly).
Exit status: 0 = no differences, 1 = differences, 2 = a file is missing or unreadable.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

NAMES = ("opom", "robustness", "attribute", "video")

META_KEYS = {"command", "cpu", "date", "created", "timestamp", "host", "hostname", "platform",
             "python", "python_version", "torch_version", "version", "versions", "machine",
             "started", "finished"}
PATH_KEYS = {"cache_dir", "lfw", "utkface", "folder", "lfw_folder", "records_folder",
             "masks_folder", "out", "markdown", "json_path", "markdown_path"}
TIMING_KEYS = {"seconds", "timing", "stage_seconds", "wall_s", "cpu_ms_per_frame",
               "frames_per_second", "real_time_ratio", "ratio_vs_amortised", "ratio_vs_applied",
               "learn_seconds"}
TIMING_RE = re.compile(r"(_s$|_s_per_|^seconds_per_|_seconds$|_per_second$|_ms$|_ms_per_)")
SETTINGS_PARENTS = {"settings", "config"}  # here "seconds", "fps", "threads" are settings


def ignored(path: tuple[str, ...], value: Any) -> str | None:
    """Why the leaf or subtree at ``path`` is ignored, or None."""
    for i, key in enumerate(path):
        if key.startswith("["):
            continue
        parent = path[i - 1] if i else ""
        if parent in SETTINGS_PARENTS and key in {"seconds", "fps", "threads"}:
            continue
        if key in META_KEYS:
            return "metadata"
        if key in TIMING_KEYS or TIMING_RE.search(key):
            return "timing"
        if key in PATH_KEYS and i == len(path) - 1 and (value is None or isinstance(value, str)):
            return "path"
    if isinstance(value, str) and value.startswith("/"):
        return "path"
    return None


def fmt(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") else "." + p for p in path) or "<root>"


class Comparer:
    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.diffs: list[str] = []
        self.ignored: list[str] = []
        self.compared = 0

    def same_number(self, a: float, b: float) -> bool:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        if (isinstance(a, bool) or isinstance(b, bool)
                or (isinstance(a, int) and isinstance(b, int))):
            return a == b
        return math.isclose(a, b, rel_tol=self.rtol, abs_tol=self.atol)

    def walk(self, a: Any, b: Any, path: tuple[str, ...]) -> None:
        why = ignored(path, a if a is not None else b)
        if why:
            self.ignored.append(f"{fmt(path)} ({why})")
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                sub = (*path, str(k))
                if k not in a or k not in b:
                    val = b[k] if k not in a else a[k]
                    if ignored(sub, val):
                        self.ignored.append(f"{fmt(sub)} ({ignored(sub, val)})")
                        continue
                    side = "after only" if k not in a else "before only"
                    self.diffs.append(f"{fmt(sub)}: {side}: {short(val)}")
                    continue
                self.walk(a[k], b[k], sub)
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.diffs.append(f"{fmt(path)}: length {len(a)} -> {len(b)}")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                self.walk(x, y, (*path, f"[{i}]"))
            return
        self.compared += 1
        num = (int, float)
        if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            if not self.same_number(a, b):
                delta = b - a
                self.diffs.append(f"{fmt(path)}: {a!r} -> {b!r} (delta {delta:+.6g})")
            return
        if a != b or type(a) is not type(b):
            self.diffs.append(f"{fmt(path)}: {short(a)} -> {short(b)}")


def short(v: Any, n: int = 160) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= n else s[:n] + "..."


def load_records(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        rec = json.loads(line)
        if isinstance(rec, dict) and "file" in rec:
            key = f"{rec.get('part', '')}:{rec['file']}"
        elif isinstance(rec, dict) and "person" in rec:
            key = f"{rec.get('part', '')}:{rec['person']}"
        else:
            key = f"line{i}"
        out[key] = rec
    return out


def compare_pair(label: str, before: Path, after: Path, args: argparse.Namespace,
                 rows: list[dict[str, Any]]) -> int:
    """Print the differences of one pair and append its row to ``rows``; return 0 same,
    1 different, 2 missing."""
    print(f"=== {label}: {before} vs {after}")
    for p in (before, after):
        if not p.exists():
            print(f"  MISSING: {p}")
            rows.append({"name": label, "status": "missing"})
            return 2
    try:
        if before.suffix == ".jsonl":
            a, b = load_records(before), load_records(after)
        else:
            a = json.loads(before.read_text(encoding="utf-8"))
            b = json.loads(after.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"  UNREADABLE: {err}")
        rows.append({"name": label, "status": "unreadable"})
        return 2
    c = Comparer(args.rtol, args.atol)
    c.walk(a, b, ())
    print(f"  {c.compared} values compared, {len(c.ignored)} keys ignored, "
          f"{len(c.diffs)} differences")
    for d in c.diffs[:args.max_print]:
        print(f"  DIFF {d}")
    if len(c.diffs) > args.max_print:
        print(f"  ... {len(c.diffs) - args.max_print} more (--max-print)")
    if args.show_ignored:
        for d in c.ignored:
            print(f"  ignored {d}")
    rows.append({"name": label, "status": "different" if c.diffs else "identical",
                 "compared": c.compared, "ignored": len(c.ignored), "differences": c.diffs})
    return 1 if c.diffs else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="before folder (or JSON file)")
    ap.add_argument("after", type=Path, help="after folder (or JSON file)")
    ap.add_argument("--names", nargs="+", default=list(NAMES))
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--atol", type=float, default=0.0)
    ap.add_argument("--max-print", type=int, default=60)
    ap.add_argument("--show-ignored", action="store_true")
    ap.add_argument("--out", type=Path, help="write the comparison as JSON")
    ap.add_argument("--markdown", type=Path, help="write a section of this markdown report")
    ap.add_argument("--section", default="comparison", help="the markdown section's name")
    ap.add_argument("--command", default="", help="how the compared runs were made (markdown)")
    args = ap.parse_args()

    rows: list[dict[str, Any]] = []
    if args.before.is_file() or args.after.is_file():
        status = compare_pair(args.before.name, args.before, args.after, args, rows)
    else:
        status = 0
        for name in args.names:
            status = max(status, compare_pair(name, args.before / f"{name}.json",
                                              args.after / f"{name}.json", args, rows))
            rec_a = args.before / f"{name}.records.jsonl"
            rec_b = args.after / f"{name}.records.jsonl"
            if rec_a.exists() or rec_b.exists():
                status = max(status, compare_pair(f"{name} records", rec_a, rec_b, args, rows))
    print("RESULT:", {0: "identical (outside ignored keys)", 1: "DIFFERENCES",
                      2: "MISSING/UNREADABLE files"}[status])
    if args.out or args.markdown:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from evaluation.report import markdown_table, write_json, write_markdown_section

        if args.out:
            write_json(args.out, {"before": str(args.before), "after": str(args.after),
                                  "rtol": args.rtol, "atol": args.atol, "runs": rows})
        if args.markdown:
            table = markdown_table(
                ["output", "result", "values compared", "keys ignored", "differences"],
                [[r["name"], r["status"], r.get("compared", "-"), r.get("ignored", "-"),
                  len(r.get("differences", []))] for r in rows])
            write_markdown_section(args.markdown, args.section, f"{args.command}\n\n{table}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())

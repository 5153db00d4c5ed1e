"""The attribute benchmark's report: the ``attributes`` section of docs/BENCHMARKS.md, the JSON
results and the per-face records beside them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloak.fileio import write_bytes_atomic
from evaluation.attributes.conditions import ATTRIBUTE_CLOAK, named
from evaluation.report import markdown_table, write_json, write_markdown_section

__all__ = ["report_markdown", "write_report"]


def _cell(stats: dict[str, Any] | None, digits: int = 3) -> str:
    """``value [low, high]``, or ``-`` where the statistic is missing or undefined."""
    if stats is None or stats.get("value") is None:
        return "-"
    low, high = stats.get("low"), stats.get("high")
    interval = "" if low is None or high is None else (
        f" [{low:.{max(digits - 1, 1)}f}, {high:.{max(digits - 1, 1)}f}]")
    return f"{stats['value']:.{digits}f}{interval}"


#: Labelled columns per predictor: (metric key, column label, digits).
_LABELLED = (("sex", "sex acc", 3), ("race", "race acc", 3), ("age", "age MAE (y)", 1),
             ("age_bin", "age-bin acc", 3))
_FLIPS = (("sex", "sex flips", 3), ("race", "race flips", 3), ("age_bin", "age-bin flips", 3),
          ("age_shift_years", "age shift (y)", 1))


def _utkface_table(summary: dict[str, Any], conditions: Sequence[str],
                   predictors: Sequence[str]) -> str:
    """Condition rows x predictor/attribute columns; a first row with the baselines."""
    metrics = summary["metrics"]
    columns = [(p, key, label, digits) for p in predictors for key, label, digits in _LABELLED
               if key in metrics["clean"][p]]
    header = ["condition", *[f"{p}: {label}" for p, _, label, _ in columns],
              *[f"{p}: PVI (reduction vs clean)" for p in predictors]]
    baseline = ["baseline (chance / median-age MAE)",
                *[f"{metrics['clean'][p][key]['baseline']:.{d}f}" for p, key, _, d in columns],
                *["0" for _ in predictors]]
    rows = [baseline]
    for condition in conditions:
        row = [condition, *[_cell(metrics[condition][p].get(key), d) for p, key, _, d in columns]]
        for p in predictors:
            pvi = metrics[condition][p].get("pvi")
            reduction = None if pvi is None else pvi.get("relative_reduction")
            row.append(_cell(pvi) + ("" if reduction is None else f" ({reduction:.0%})"))
        rows.append(row)
    return markdown_table(header, rows)


def _lfw_table(summary: dict[str, Any], predictors: Sequence[str]) -> str:
    flips = summary["flips"]
    first = next(iter(flips.values()))
    columns = [(p, key, label, d) for p in predictors for key, label, d in _FLIPS
               if key in first[p]]
    rows = [[condition, *[_cell(row[p].get(key), d) for p, key, _, d in columns]]
            for condition, row in flips.items()]
    return markdown_table(["condition", *[f"{p}: {label}" for p, _, label, _ in columns]], rows)


def _identity_table(psr: dict[str, Any]) -> str:
    names = list(next(iter(psr.values()))["recognizers"])
    rows = [[condition, *[_cell(row["recognizers"][n]) for n in names], _cell(row["mean"])]
            for condition, row in psr.items()]
    return markdown_table(["condition", *[f"{n} PSR@1" for n in names], "mean PSR@1"], rows)


def _attribute_cloak_table(cloak: dict[str, Any], metrics: dict[str, Any] | None,
                           predictors: Sequence[str]) -> str:
    """``cloak`` and each ``cloak-attr`` fold: what was in the loss, sex accuracy per predictor
    (``wb`` = in that cloak's loss, a white-box figure), identity cosines and SSIM."""
    folds = cloak["folds"]
    recognizers = list(next(iter(folds.values())).get("identity", {}))
    header = ["cloak", "attribute term", "scored by",
              *([f"{p}: sex acc" for p in predictors] if metrics is not None else []),
              *[f"{r}: cosine clean vs cloaked" for r in recognizers], "SSIM to clean"]
    rows = []
    if "cloak" in cloak:
        plain = metrics["cloak"] if metrics is not None else None
        rows.append(["cloak", "none", "-",
                     *([_cell(plain[p].get("sex")) for p in predictors] if plain else []),
                     *[_cell(cloak["cloak"]["identity"][r]) for r in recognizers],
                     _cell(cloak["cloak"]["ssim"])])
    for fold in folds.values():
        pushed = "; ".join(f"{n} ({', '.join(a)})" for n, a in fold["surrogates"].items())
        sex = []
        if metrics is not None:
            sex = [_cell(fold.get("metrics", {}).get(p, {}).get("sex"))
                   + (" wb" if p in fold["surrogates"] else "") for p in predictors]
        rows.append([f"{ATTRIBUTE_CLOAK} fold", pushed or "none (plain cloak)",
                     ", ".join(fold["scored"]), *sex,
                     *[_cell(fold.get("identity", {}).get(r)) for r in recognizers],
                     _cell(fold.get("ssim"))])
    return markdown_table(header, rows)


def _counts_table(result: dict[str, Any], conditions: Sequence[str]) -> str:
    parts = {f"UTKFace {d}": run["summary"] for d, run in result["utkface"].items()}
    if "lfw" in result:
        parts["LFW probes"] = result["lfw"]["summary"]
    rows = []
    for condition in conditions:
        if condition == "clean":
            continue
        row: list[Any] = [condition]
        style = named(condition).style
        for s in parts.values():
            failed = s["mask_failed"].get(style, 0) if style else 0
            on_clean = s["cloak_on_clean_alignment"].get(condition, 0)
            row.append(f"{s['not_redetected'][condition]} / {failed} / {on_clean}")
        row += ["-" if s["make_s"].get(condition) is None else f"{s['make_s'][condition]:.2f}"
                for s in parts.values()]
        rows.append(row)
    return markdown_table(["condition", *[f"{name}: not re-detected / mask failed / cloak on "
                                          "clean alignment" for name in parts],
                           *[f"{name}: s to make" for name in parts]], rows)


_ATTRIBUTE_NOTE = (
    "Attribute-aware cloak (`cloak-attr`, leave-one-out): each fold's cloak pushes the listed "
    "white-box predictors (torch) towards uninformative outputs besides the recognizers, and "
    "feeds the `cloak-attr` row above only for the predictors it was scored by; sex accuracy "
    "marked wb is that of a predictor in the fold's own loss (white box). Identity cost: mean "
    "cosine between the clean and the cloaked face's features on black-box recognizers (lower "
    "= stronger identity protection) and SSIM of the cloaked photo to the clean one; "
    "[95% bootstrap interval].")


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``attributes`` section of docs/BENCHMARKS.md: one table per UTKFace set, LFW flips,
    counts and time."""
    settings, config = result["settings"], result["config"]
    conditions, predictors = settings["conditions"], settings["predictors"]
    runtimes = ", ".join(f"{n} ({v['runtime']})" for n, v in result["predictors"].items())
    intro = (
        f"`{command or 'run_attribute_benchmark'}`. Predictors (black boxes; the cloak is "
        f"learned against identity recognizers only): {runtimes}. Cloak: mode {settings['mode']} "
        f"(surrogates {', '.join(config['surrogates'])}), {config['steps']} steps of "
        f"{config['step_size']:g}, eps {config['eps']:g}/255, feather {config['feather']:g} px, "
        f"seed {config['seed']}. Every condition's photo is rounded to 8 bits and the face is "
        f"detected again (MTCNN) as an attacker would; a face not found again is still "
        f"predicted on the clean photo's alignment and counted below. Physical masks are "
        f"synthetic (68 dlib landmarks), seeded per face; in `cloak+mask` the mask is drawn "
        f"first and the clean photo's cloak (the `cloak` condition's) pasted into the masked "
        f"photo.")
    if "attribute_folds" in config:
        folds = "; ".join(
            f"{', '.join(f['surrogates']) or 'none'} in the loss, scored by "
            f"{', '.join(f['scored'])}" for f in config["attribute_folds"].values())
        intro += (f" `cloak-attr`: the same cloak plus the attribute term on "
                  f"{', '.join(settings['protect_attributes'])} (weight "
                  f"{settings['attribute_weight']:g} per predictor against 1 per recognizer), "
                  f"leave-one-out over the attribute predictors (folds: {folds}).")
    intro += "\n"
    parts = [f"## Attribute leakage: physical masks vs cloaks\n\n{intro}"]
    for dataset, run in result["utkface"].items():
        s = run["summary"]
        malformed = "; ".join(m["file"] for m in run["malformed"]) or "none"
        head = (f"UTKFace `{dataset}`: {s['files']} files, {s['malformed']} skipped for a "
                f"malformed name ({malformed}), {s['not_detected']} not detected on the clean "
                f"chip (padded by {settings['pad']} px, {settings['pad_mode']}), "
                f"{s['scored']} scored (every condition made). One photo per person, so the "
                f"cloak is learned from the very photo it protects (a one-photo cloak). Cells: "
                f"value [95% bootstrap interval over faces]; PVI = privacy vulnerability index "
                f"(equal weights over the predictor's attributes), reduction relative to clean.")
        table = "(no face scored)" if not s["metrics"] else _utkface_table(s, conditions,
                                                                          predictors)
        parts.append(f"{head}\n\n{table}\n")
        if "attribute_cloak" in s:
            parts.append(_ATTRIBUTE_NOTE + "\n\n" + _attribute_cloak_table(
                s["attribute_cloak"], s["metrics"], predictors) + "\n")
    if "lfw" in result:
        s = result["lfw"]["summary"]
        skipped = "; ".join(f"{k['person']} ({k['reason']})" for k in result["lfw"]["skipped"])
        head = (f"LFW (no labels; reference = predictions on the clean probe): {s['identities']} "
                f"identities (skipped: {skipped or 'none'}), {s['probes']} probes, {s['scored']} "
                f"scored. Per identity one cloak learned from its first {settings['n_train']} "
                f"photos with a face, pasted into the next {settings['n_probe']} (the probes). "
                f"Flip rate = share of probes whose predicted class changes; age shift = mean "
                f"|change| of the predicted age, years; [95% bootstrap interval over probes].")
        table = "(no probe scored)" if not s["flips"] else _lfw_table(s, predictors)
        parts.append(f"{head}\n\n{table}\n")
        if s.get("identity_psr"):
            parts.append("Identity leakage on the same LFW probes: PSR@1 (share of probes whose "
                         "person is NOT the top-1 match; gallery = the person's other clean "
                         "probes + the distractors) per black-box recognizer, [95% bootstrap "
                         "interval over identities]; a face not found again is searched on the "
                         "clean photo's alignment:\n\n" + _identity_table(s["identity_psr"])
                         + "\n")
        if "attribute_cloak" in s:
            parts.append(_ATTRIBUTE_NOTE + "\n\n" + _attribute_cloak_table(
                s["attribute_cloak"], None, predictors) + "\n")
    parts.append("Counts per condition, and seconds per face to make its photo (mask: "
                 "landmarks + drawing; cloak: learning + paste on UTKFace, paste only on LFW, "
                 "whose cloaks are learned once per identity):\n\n"
                 + _counts_table(result, conditions) + "\n")
    per_face = [f"{d} {r['summary']['seconds_per_face']:.1f} s/face"
                for d, r in result["utkface"].items()
                if r["summary"]["seconds_per_face"] is not None]
    lfw = result.get("lfw", {}).get("summary", {})
    if lfw.get("seconds_per_identity") is not None:
        per_face.append(f"LFW {lfw['seconds_per_identity']:.1f} s/identity, of which "
                        f"{lfw['learn_s_per_identity']:.1f} s learning the cloak")
    parts.append(f"Wall time {result['wall_s']:.0f} s ({', '.join(per_face) or 'all cached'}, "
                 f"all conditions); {result['torch_threads']} torch threads.\n")
    return "\n".join(parts)


def _split_records(result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The result without its per-face and per-identity records, and those records (each with
    its ``part``: ``utkface-<dataset>`` or ``lfw``)."""
    head = dict(result)
    head["utkface"] = {d: {k: v for k, v in run.items() if k != "faces"}
                       for d, run in result["utkface"].items()}
    records = [{"part": f"utkface-{d}", **face} for d, run in result["utkface"].items()
               for face in run["faces"]]
    if "lfw" in result:
        head["lfw"] = {k: v for k, v in result["lfw"].items() if k != "identities"}
        records += [{"part": "lfw", **r} for r in result["lfw"]["identities"]]
    return head, records


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "attributes") -> str:
    """Write the JSON results, the per-face records and one section of the markdown report.

    The records (predictions per face and condition) go to ``<json_path stem>.records.jsonl``,
    one compact JSON object per UTKFace face or LFW identity (about 4.5 kB a face, some 20 MB
    for the full run; indented inside the JSON they would take about 70 MB); the JSON file
    holds the settings, counts and metrics and names the records file.

    Args:
        result: :func:`~evaluation.attributes.run.run_attribute_benchmark`'s return
            value.
        json_path: where the JSON goes (None = neither it nor the records are written).
        markdown_path: the markdown report (None = not written).
        command: the command line, quoted in both.
        section: name of the report's section (``<!-- BEGIN name -->``) that is replaced.

    Returns:
        the markdown section.
    """
    body = report_markdown(result, command)
    if json_path is not None:
        head, records = _split_records(result)
        records_path = json_path.with_suffix(".records.jsonl")
        write_json(json_path, {"command": command, "records": records_path.name, **head})
        lines = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n"
                        for r in records)
        write_bytes_atomic(records_path, lines.encode("utf-8"))
    if markdown_path is not None:
        write_markdown_section(markdown_path, section, body)
    return body

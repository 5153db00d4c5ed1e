"""The robustness benchmark's report: the ``robustness`` section of docs/BENCHMARKS.md and the
JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.report import markdown_table, publish
from evaluation.robustness.settings import PURIFIERS

__all__ = ["report_markdown", "write_report"]


def _cell(stats: dict[str, Any], rate: str = "psr@1", ci: str = "ci@1") -> str:
    low, high = stats[ci]
    return f"{stats[rate]:.3f} [{low:.2f}, {high:.2f}]"


def _label(name: str) -> str:
    kind, condition = name.split("/", 1)
    if kind == "direction":
        return {"clean-vs-protected": "clean probe vs protected gallery",
                "protected-vs-protected": "protected probe vs protected gallery"}[condition]
    what = "untouched" if condition == "none" else condition
    if condition in PURIFIERS:
        what = f"purifier {condition}"
    return f"{kind}: {what}"


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``robustness`` section of docs/BENCHMARKS.md: PSR per condition, verification, mask
    estimation and the per-photo baseline."""
    summary, settings, config = result["summary"], result["settings"], result["config"]
    tested = [t for f in result["folds"] for t in f["tested"]]
    fold_of = {t: f["name"] for f in result["folds"] for t in f["tested"]}
    header = ["condition", *[f"{t} ({fold_of[t]})" for t in tested], "mean"]

    def psr_cells(row: dict[str, Any]) -> list[str]:
        return [*[_cell(row["recognizers"][t]) for t in tested], _cell(row["mean"])]

    rows = [[_label(name), *psr_cells(row)] for name, row in summary["conditions"].items()]
    main = markdown_table(header, rows)

    ver_rows = []
    for far, row in summary["verification"].items():
        for t in [*tested, "mean"]:
            stats = row["mean"] if t == "mean" else row["recognizers"][t]
            threshold = "-" if t == "mean" else (
                f"{stats['threshold']:.3f} (FAR {stats['far_on_calibration']:.1e})")
            ver_rows.append([far, t, threshold,
                             _cell(stats, "protection_rate", "protection_ci"),
                             _cell(stats, "clean_frr", "clean_frr_ci")])
    verification = markdown_table(
        ["FAR", "recognizer", "threshold (FAR on calibration pairs)",
         "protected genuine pairs rejected", "clean genuine pairs rejected (FRR)"], ver_rows)

    est_rows = []
    for key, entry in summary["estimation"].items():
        if key == "oracle":
            continue
        corr = "-" if entry["correlation"] is None else f"{entry['correlation']:.2f}"
        est_rows.append([f"{entry['denoiser']}, k = {entry['k']}", f"{entry['photos']:.1f}", corr,
                         *psr_cells(entry["protected"]), _cell(entry["control"]["mean"])])
    est_rows.append(["oracle: the true mask subtracted", "-", "1", *psr_cells(
        summary["estimation"]["oracle"]["protected"]), "-"])
    estimation = markdown_table(
        ["attack", "photos used", "corr. with mask", *[f"{t} after attack" for t in tested],
         "mean after attack", "control: clean probes, mean PSR"], est_rows)
    stronger = ", ".join(f"k = {k}: {d}" for k, d in summary["stronger_denoiser"].items())

    per = summary["per_photo"]
    sec = per["seconds"]
    base_rows = [["universal mask, learning amortised over the training photos",
                  *psr_cells(per["universal"]), f"{sec['universal_amortised_s_per_photo']:.2f}"],
                 ["universal mask, already learned (paste only)", *psr_cells(per["universal"]),
                  f"{sec['universal_apply_s_per_photo']:.3f}"]]
    ratio = ""
    if "baseline" in per:
        base_rows.append(["per-photo mask (one optimisation per photo)",
                          *psr_cells(per["baseline"]), f"{sec['baseline_s_per_photo']:.2f}"])
        ratio = (f"\n\nPer-photo / universal seconds per protected photo: "
                 f"{sec['ratio_vs_amortised']:.1f}x (amortised), {sec['ratio_vs_applied']:.0f}x "
                 f"(mask already learned). Universal mask learning: "
                 f"{sec['universal_learn_s_per_mask']:.1f} s per mask on "
                 f"{settings['n_train']} photos ("
                 + ", ".join(f"fold {f} {s:.1f} s" for f, s in sec["learn_s_per_fold"].items())
                 + f"); per-photo learning {sec['baseline_learn_s_per_photo']:.1f} s. Masks "
                 f"reused from an earlier run (their stored learning time counts): "
                 f"{sec['masks_reused']} universal, {sec['baseline_masks_reused']} per-photo.")
    baseline = markdown_table(
        ["method", *[f"{t} PSR@1" for t in tested], "mean PSR@1", "seconds per protected photo"],
        base_rows) + ratio

    thresholds = next(iter(result["thresholds"].values()))
    pairs = next(iter(thresholds.values()))["pairs"]
    folds = "\n".join(f"- fold {f['name']}: surrogates {', '.join(f['surrogates'])} -> tested on "
                      f"{', '.join(f['tested'])}" for f in result["folds"])
    skipped = "; ".join(f"{s['person']} ({s['reason']})" for s in result["skipped"]) or "none"
    dist = result["distractors"]
    intro = (
        f"`{command or 'run_robustness'}`: {len(result['people'])} identities (skipped: "
        f"{skipped}); the OPOM benchmark's split ({settings['n_train']} training photos learn "
        f"one universal mask per fold, {settings['n_probe']} probes), gallery (the person's "
        f"other probes + {dist['with_face']} distractors) and leave-one-out folds. Optimiser: "
        f"mode {settings['mode']}, convex, eps {config['eps']:g}/255, {config['steps']} steps, "
        f"expectation over transformation {config.get('eot', False)}, seed {config['seed']}. "
        f"Each probe is protected, rounded to 8 bits, transformed, then "
        f"detected and aligned again (MTCNN) and searched by each black box; a probe with no "
        f"face found counts as protected. `jitter`: the 5 landmarks found again moved by "
        f"U[-{settings['jitter_px']:g}, {settings['jitter_px']:g}] photo pixels each before "
        f"alignment. `clean:` rows run the same transform on the unprotected probe.\n\n"
        f"Folds:\n{folds}\n")
    learned = ("robust option: learned with expectation over transformation"
               if config.get("eot") else "default optimiser")
    return (
        f"## Robustness of universal masks (LFW, {learned})\n\n{intro}\n"
        f"PSR@1 [95% bootstrap interval over identities] (protected / clean probes vs a clean "
        f"gallery unless the row says otherwise):\n\n{main}\n\n"
        f"Verification: thresholds per black box at each FAR, calibrated on {pairs} pairs of "
        f"clean distractor photos (all different people); a genuine pair is a probe (protected, "
        f"or clean for the false-reject rate) against each of the person's other clean "
        f"probes; a pair is accepted when its cosine is above the threshold:\n\n"
        f"{verification}\n\n"
        f"Mask-estimation attack: the attacker detects and aligns the first k of the person's "
        f"training photos, protected, estimates the mask as the mean of (frame - denoised "
        f"frame) and subtracts it from each protected probe's aligned frame. Control: the same "
        f"attack from the clean training photos on the clean probes. Oracle: the true mask "
        f"(feathered) subtracted instead of an estimate. Stronger denoiser (lower "
        f"mean PSR) per k: {stronger}.\n\n{estimation}\n\n"
        f"Per-photo baseline (Fawkes / LowKey style: the same surrogates and settings, one "
        f"optimisation per probe) against the universal mask, timed in the same run:\n\n"
        f"{baseline}\n\n"
        f"Wall time {result['wall_s']:.0f} s ({result['seconds_per_identity']:.1f} s per "
        f"identity); {result['torch_threads']} torch threads on a shared 2-core CPU.\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "robustness") -> str:
    """Write the JSON results and the ``robustness`` section of the markdown report; return it."""
    return publish(result, report_markdown(result, command), json_path, markdown_path, command,
                   section)

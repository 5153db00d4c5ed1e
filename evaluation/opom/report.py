"""The OPOM benchmark's report: the ``opom`` section of docs/BENCHMARKS.md and the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.protocol.folds import BLACK_BOXES
from evaluation.report import markdown_table, publish

__all__ = ["report_markdown", "write_report"]


def _cell(stats: dict[str, Any], k: int) -> str:
    low, high = stats[f"ci@{k}"]
    return f"{stats[f'psr@{k}']:.3f} [{low:.2f}, {high:.2f}]"


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``opom`` section of docs/BENCHMARKS.md: PSR tables, quality and time, the folds."""
    summary, config = result["summary"], result["config"]
    tested = [t for f in result["folds"] for t in f["tested"]]
    fold_of = {t: f["name"] for f in result["folds"] for t in f["tested"]}
    header = ["condition", *[f"{t} ({fold_of[t]})" for t in tested], "mean"]
    tables = []
    for k, per, mean, what in (
            (1, "recognizers", "mean", "protected probe vs clean gallery"),
            (1, "linkage", "linkage_mean", "protected probe vs the person's other PROTECTED "
                                           "probes + distractors (linkage)"),
            (5, "recognizers", "mean", "protected probe vs clean gallery")):
        rows = [[c, *[_cell(s[per][t], k) for t in tested], _cell(s[mean], k)]
                for c, s in summary.items()]
        tables.append(f"PSR@{k}, {what} [95% bootstrap interval over identities]:\n\n"
                      + markdown_table(header, rows))
    quality_rows = []
    for c, s in summary.items():
        if c == "clean":
            continue
        q = s["quality"]
        learn = "-" if s["learn_s_per_mask"] is None else ", ".join(
            f"{name} {sec:.1f}" for name, sec in s["learn_s_per_fold"].items())
        undetected = sum(r["undetected"] for r in s["recognizers"].values())
        protect = f"{s['protect_s_per_photo']:.3f}"
        if "refine_s_per_photo" in s:
            protect = f"{s['refine_s_per_photo']:.2f} refine + {protect}"
        quality_rows.append([c, q["psnr_mean"], q["ssim_mean"], q["ssim_min"], q["linf_max"],
                             learn, protect, undetected])
    quality = "" if not quality_rows else (
        "Quality of the protected full photos (8-bit) and time:\n\n" + markdown_table(
            ["condition", "PSNR dB (mean)", "SSIM (mean)", "SSIM (min)", "L-inf max",
             "learn s/mask (per fold)", "protect s/photo", "probes not re-detected"],
            quality_rows) + "\n\n")
    folds = "\n".join(f"- fold {f['name']}: surrogates {', '.join(f['surrogates'])} -> tested on "
                      f"{', '.join(f['tested'])}" for f in result["folds"])
    settings, dist = result["settings"], result["distractors"]
    joint = "" if "refine-joint" not in summary else (
        "; refine-joint: the same steps on all the person's probes at once, one mask each, "
        "pushed apart from each other by the mode's anti-linkage term")
    if any(c.startswith("refine-joint-") for c in summary):
        joint += ("; refine-joint-center / -convex: refine-joint with each probe pushed away "
                  "from the center / convex hull of the probes' clean features instead of its "
                  "own clean feature (those of the gallery's photos among them); "
                  "refine-joint-train-center / -convex: from the center / convex hull of the "
                  f"{settings['n_train']} training photos' clean features (in no gallery); "
                  "-draws3: each step's surrogate gradients averaged over 3 DI draws; -si: "
                  "draw k of the 3 sees the probes' pixel values times 0.5^k (scale "
                  "invariance); -ni: each step's gradient taken ahead along the momentum "
                  "(Nesterov; -draws3-si-ni is what `cloak protect --refine` ships)")
    if "refine-batch2" in summary:
        joint += ("; refine-batch2: the same in batches of 2 probes, each batch pushed apart "
                  "from the protected probes of the batches before it (as `cloak protect "
                  "--refine` carries it across its batches)")
    diagnostics = "" if not any(c.startswith("refine-") or c == "convex-train"
                                for c in summary) else (
        f"; diagnostics: `convex-train` = the convex mask on the {settings['n_train']} training "
        f"photos it was learned from, each searched among all {settings['n_probe']} clean probes "
        "+ distractors, `refine-shiftK` = the refined masks moved K px right and down, "
        "`refine-swap` = each probe gets the person's next probe's refined mask")
    skipped = "; ".join(f"{s['person']} ({s['reason']})" for s in result["skipped"]) or "none"
    runtimes = ", ".join(f"{t} = {'reference runtime' if BLACK_BOXES[t][1] else 'zoo loader'}"
                         for t in tested)
    intro = (
        f"`{command or 'run_benchmark'}`: {len(result['people'])} identities (skipped: {skipped}), "
        f"the first {settings['n_train']} photos with a face learn the mask and the next "
        f"{settings['n_probe']} are probes. Gallery per probe: the person's other clean probes + "
        f"{dist['with_face']} distractors with a face (of {dist['files']}). Protected probes are "
        f"pasted by `protect_photo` ({settings['paste_mode']}), rounded to 8 bits, then detected "
        f"and aligned again (MTCNN) before recognition; a probe with no face found counts as "
        f"protected. Optimiser: mode {settings['mode']}, eps {config['eps']:g}/255, "
        f"{config['steps']} steps of {config['step_size']:g}, momentum {config['momentum']:g}, "
        f"DI {config['diversity']:g}, TI kernel {config['ti_kernel']}, paste path "
        f"{config['paste']}, feather {config['feather']:g} px, convex warm-up "
        f"{config['warmup']}, surrogate gradients balanced {config.get('balance', False)}, "
        f"objective terms of the shipped mask (center/affine/convex/refine): anti-linkage "
        f"weight {config.get('linkage', 0):g}, views {config.get('views', False)}, seed "
        f"{config['seed']}. Ablations: `opom` = the convex mask with none of the optional "
        f"terms (the OPOM objective alone), `opom+T` = with term T only. Refine: the convex "
        f"mask plus {settings.get('refine_steps', '-')} "
        f"steps per probe on that probe alone (a mask per photo){joint}{diagnostics}. Noise: "
        f"U[-eps, eps] in the canonical frame, pasted the same way. Recognizers: {runtimes}.\n\n"
        f"Leave-one-out folds (dlib-resnet and dlib-native count as one model):\n{folds}\n")
    timing = (f"Wall time {result['wall_s']:.0f} s ({result['seconds_per_identity']:.1f} s per "
              f"identity, all conditions and folds; detection "
              f"{result['detect_s_per_photo']:.2f} s per photo); {result['torch_threads']} torch "
              f"threads on a shared 2-core CPU.")
    return (f"## OPOM masks against black-box recognizers (LFW)\n\n{intro}\n{tables[0]}\n\n"
            f"{tables[1]}\n\n{tables[2]}\n\n{quality}{timing}\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "opom") -> str:
    """Write the JSON results and the ``opom`` section of the markdown report; return it."""
    return publish(result, report_markdown(result, command), json_path, markdown_path, command,
                   section)

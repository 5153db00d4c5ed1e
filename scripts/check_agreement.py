"""Does ``cloak check``'s top-1 verdict agree with the robustness benchmark's PSR@1?

For a few LFW people of the robustness benchmark (its split: 10 training photos, 5 probes; its
fold plan "two"; its fast-mode convex masks, learned by
:func:`evaluation.robustness.identity.fold_mask` into ``--cache-dir``), each fold's mask is
pasted on the person's 5 probes as the benchmark pastes it (rounded to 8 bits) and written as a
PNG. Then, per probe and per recognizer the fold tests:

- the benchmark: the attacker's re-detection and embedding, ranked against the person's other 4
  clean probes plus the first ``--distractors`` LFW distractors (the benchmark's cached
  features, ``--features-cache``): protected when a distractor outranks them
  (:func:`evaluation.verification.gallery_ranks`); also against all 2,679 (PSR@1 itself);
- ``cloak check``: :func:`cloak.check.check_photos` on the probe's PNG, references = the other
  4 clean probe files, the fold's mask as a ``.cloak`` file, distractors = the same photos
  read once by :func:`cloak.check.read_distractors`, rule ``top1``.

Writes JSON (``--out``) and the ``check-agreement`` section of docs/BENCHMARKS.md.

    python scripts/check_agreement.py --features-cache /work/main/results/cache
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import attackers
from cloak.check import check_photos, read_distractors
from cloak.mask import Mask, save_mask
from evaluation.opom.settings import BenchmarkSettings
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, REPO
from evaluation.protocol.folds import all_tested, load_black_boxes, load_surrogates
from evaluation.protocol.gallery import distractor_features
from evaluation.protocol.lfw import split_person
from evaluation.protocol.recognition import embed, paste_and_round
from evaluation.report import markdown_table, publish
from evaluation.robustness.identity import Models, fold_mask
from evaluation.robustness.run import stores
from evaluation.robustness.settings import RobustnessSettings
from evaluation.robustness.views import frames_after
from evaluation.verification import gallery_ranks

STORED = REPO / "docs" / "results" / "robustness.json"


def person_rows(person: str, settings: RobustnessSettings, models: Models,
                gallery: dict[str, torch.Tensor], distractor_files: list[Path], n: int,
                distractors: Any, scratch: Path) -> dict[str, Any]:
    """One person: per fold and recognizer, each probe's benchmark ranks and check verdict."""
    opom = settings.opom
    config = opom.config("convex")
    folds = opom.fold_plan()
    _, masks = stores(settings, folds, distractor_files)
    split, reason, _ = split_person(opom.lfw / "identities" / person, models.detector,
                                    opom.n_train, opom.n_probe)
    if split is None:
        raise ValueError(f"{person}: {reason}")
    probes = split.probes
    tested = all_tested(folds)
    clean = {t: embed(models.recognizers[t], [p.face.frame for p in probes]) for t in tested}
    out: dict[str, Any] = {"person": person, "probes": [p.path.name for p in probes], "folds": {}}
    for fold in folds:
        delta, learn_s, reused = fold_mask(masks, f"{person}__{fold.name}", split.train, fold,
                                           models, settings)
        photos, _ = paste_and_round(probes, delta, config.feather, opom.paste_mode)
        frames = frames_after(photos, "none", models.detector)
        mask_file = save_mask(Mask(delta.float().contiguous(), float(config.eps), "convex",
                                   list(fold.surrogates), person, config.seed),
                              scratch / f"{person}__{fold.name}.cloak")
        files = []
        for probe, photo in zip(probes, photos, strict=True):
            files.append(scratch / f"{probe.path.stem}__{fold.name}.png")
            Image.fromarray(photo.permute(1, 2, 0).to(torch.uint8).numpy()).save(files[-1])
        verdicts: dict[str, list[bool]] = {t: [] for t in fold.tested}
        for i, file in enumerate(files):
            refs = [p.path for j, p in enumerate(probes) if j != i]
            result = check_photos([file], refs, mask_file, distractors, rule="top1")
            for t in fold.tested:
                verdicts[t].append(not result.photos[0].matched(t, "top1"))
        rows = {}
        for t in fold.tested:
            queries = embed(models.recognizers[t], frames)
            rows[t] = {"check_protected": verdicts[t],
                       "benchmark_ranks_n": gallery_ranks(queries, clean[t],
                                                          gallery[t][:n]).tolist(),
                       "benchmark_ranks_full": gallery_ranks(queries, clean[t],
                                                             gallery[t]).tolist()}
        out["folds"][fold.name] = {"learn_s": learn_s, "mask_reused": reused, "recognizers": rows}
    return out


def summarise(people: list[dict[str, Any]], stored: dict[str, Any]) -> dict[str, Any]:
    """Per recognizer: check's top-1 protection, the benchmark's on the same distractors, their
    per-probe agreement, the benchmark's with all distractors and the stored figure."""
    by_name: dict[str, dict[str, list]] = {}
    for entry in people:
        record = stored.get(entry["person"])
        for fold in entry["folds"].values():
            for name, row in fold["recognizers"].items():
                into = by_name.setdefault(name, {"check": [], "n": [], "full": [], "stored": []})
                into["check"] += row["check_protected"]
                into["n"] += [r >= 1 for r in row["benchmark_ranks_n"]]
                into["full"] += [r >= 1 for r in row["benchmark_ranks_full"]]
                if record is not None and record["probes"] == entry["probes"]:
                    into["stored"] += [r >= 1 for r in
                                       record["conditions"]["protected/none"]["ranks"][name]]
    return {name: {"probes": len(v["check"]), "check_psr": float(np.mean(v["check"])),
                   "benchmark_psr": float(np.mean(v["n"])),
                   "agreement": float(np.mean(np.equal(v["check"], v["n"]))),
                   "benchmark_psr_all_distractors": float(np.mean(v["full"])),
                   "stored_psr": float(np.mean(v["stored"])) if v["stored"] else None}
            for name, v in by_name.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--people", nargs="+",
                        default=["Alejandro_Toledo", "Alvaro_Uribe", "Amelie_Mauresmo"])
    parser.add_argument("--distractors", type=int, default=300,
                        help="first N LFW distractors in both galleries")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where the masks are stored (masks/<digest>)")
    parser.add_argument("--features-cache", type=Path, default=DEFAULT_CACHE,
                        help="the benchmarks' distractor feature cache")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" /
                        "check_agreement.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    settings = RobustnessSettings(opom=BenchmarkSettings(
        lfw=args.lfw, mode="fast", loo="two", cache_dir=args.cache_dir, progress=False))
    folds = settings.opom.fold_plan()
    _, distractor_files = settings.opom.photo_sets()
    tested = all_tested(folds)
    models = Models(attackers.load("mtcnn"), load_black_boxes(tested), load_surrogates(folds))
    gallery = distractor_features(distractor_files, tested, models.recognizers, models.detector,
                                  args.features_cache, progress=False)
    distractors = read_distractors(distractor_files[:args.distractors])   # every judge
    stored_json = json.loads(STORED.read_text(encoding="utf-8"))
    stored = {r["person"]: r for r in stored_json["identities"]}
    with tempfile.TemporaryDirectory() as tmp:
        people = [person_rows(p, settings, models, gallery, distractor_files, args.distractors,
                              distractors, Path(tmp)) for p in args.people]
    summary = summarise(people, stored)
    command = "python " + shlex.join(["scripts/check_agreement.py", *sys.argv[1:]])
    _, masks = stores(settings, folds, distractor_files)
    result = {"benchmark": "cloak check top-1 vs the robustness benchmark's PSR@1 (LFW)",
              "people": args.people, "distractors": args.distractors,
              "distractor_faces_read_by_check": distractors.faces,
              "masks_folder": masks.folder.name,
              "stored_masks_folder": Path(stored_json["masks_folder"]).name,
              "wall_s": time.perf_counter() - started, "summary": summary, "identities": people}
    rows = [[name, s["probes"], s["check_psr"], s["benchmark_psr"], s["agreement"],
             s["benchmark_psr_all_distractors"],
             "-" if s["stored_psr"] is None else s["stored_psr"]]
            for name, s in summary.items()]
    table = markdown_table(["recognizer", "probes", "check top-1 protected",
                            f"benchmark PSR@1 ({args.distractors} distractors)",
                            "per-probe agreement", "benchmark PSR@1 (2,679)",
                            "stored robustness run"], rows)
    body = (f"## `cloak check` agrees with the benchmark? (LFW, {len(args.people)} people)\n\n"
            f"`{command}`: the robustness benchmark's masks as it learns them today (fast mode, "
            f"folds A and B, masks folder {masks.folder.name}) on each person's 5 probes. "
            f"`cloak check` (rule top1; references = the other 4 clean probes; the first "
            f"{args.distractors} LFW distractors, read by the check itself) against the "
            "benchmark's own ranking of the same protected probes (re-detected; the same "
            "distractors' cached features). Protected = the nearest face is not the person's; "
            "agreement = share of probes where both say the same. The last column is the stored "
            "robustness run (docs/results/robustness.json, same probes), whose masks "
            f"({result['stored_masks_folder']}) predate the objective terms (fast mode had no "
            "linkage or views then): context, not the same masks.\n\n"
            f"{table}\n")
    publish(result, body, args.out, args.markdown, command, "check-agreement")
    print(table)


if __name__ == "__main__":
    main()

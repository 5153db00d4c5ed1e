"""Calibrate the verification thresholds ``cloak check`` ships (cloak/data/thresholds.json).

Per recognizer of :data:`attackers.black_boxes.RECOGNIZERS` (on the runtime the benchmarks use
for it), the cosine-similarity threshold at each false-accept rate, computed exactly as the
robustness benchmark does: features of the LFW distractor photos
(:func:`evaluation.protocol.gallery.distractor_features`, read from its cache when present),
every unordered pair of them as impostors (2,679 different people: 3,587,181 pairs), and
:func:`evaluation.robustness.summary.verification_thresholds`. Thresholds are numbers, not face
features (DESIGN section 7): nothing personal is written.

    python scripts/calibrate_thresholds.py                   # writes cloak/data/thresholds.json
    python scripts/calibrate_thresholds.py --check docs/results/robustness.json   # compare too
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from attackers import zoo
from attackers.black_boxes import RECOGNIZERS, load_black_box
from cloak.check.thresholds import THRESHOLD_FARS, THRESHOLDS_FILE
from evaluation.opom.settings import BenchmarkSettings
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW
from evaluation.protocol.gallery import distractor_features
from evaluation.report import write_json
from evaluation.robustness.summary import verification_thresholds
from evaluation.store import files_digest


class _Recognizers(dict):
    """Black boxes loaded only when a feature cache is missing (name -> recognizer)."""

    def __missing__(self, name: str):
        self[name] = load_black_box(name)
        return self[name]


def calibrate(lfw: Path, cache_dir: Path, distractors: int | None,
              fars: tuple[float, ...]) -> dict:
    """The thresholds file's content: per recognizer its runtime, weights and thresholds."""
    import attackers

    _, files = BenchmarkSettings(lfw=lfw, distractors=distractors,
                                 cache_dir=cache_dir).photo_sets()
    names = list(RECOGNIZERS)
    gallery = distractor_features(files, names, _Recognizers(), attackers.load("mtcnn"),
                                  cache_dir, progress=True)
    found = verification_thresholds(gallery, fars)
    recognizers = {}
    for name in names:
        zoo_name, reference = RECOGNIZERS[name]
        recognizers[name] = {
            "zoo": zoo_name, "reference_runtime": reference,
            "weights": zoo.weights_digests(zoo_name),
            "thresholds": {far: entry["threshold"] for far, entry in found[name].items()},
            "far_on_calibration": {far: entry["far"] for far, entry in found[name].items()},
            "pairs": next(iter(found[name].values()))["pairs"]}
    return {
        "what": "cosine-similarity thresholds per recognizer: a pair of faces is accepted as "
                "the same person when its similarity is strictly above the threshold",
        "dataset": f"LFW distractors ({len(files)} photos of {len(files)} different people, "
                   f"{len(next(iter(gallery.values())))} with a face): every unordered pair "
                   "is an impostor pair",
        "files_sha256": files_digest(files),
        "fars": [f"{far:g}" for far in fars],
        "recognizers": recognizers,
    }


def compare(result: dict, path: Path) -> float:
    """Largest absolute difference to the ``thresholds`` of a robustness benchmark JSON."""
    recorded = json.loads(path.read_text(encoding="utf-8"))["thresholds"]
    gaps = [abs(entry["thresholds"][far] - recorded[name][far]["threshold"])
            for name, entry in result["recognizers"].items() if name in recorded
            for far in entry["thresholds"] if far in recorded[name]]
    if not gaps:
        raise ValueError(f"{path}: no threshold in common")
    return max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="the benchmarks' distractor feature cache")
    parser.add_argument("--distractors", type=int, default=None,
                        help="first N distractor photos only (default: all, as shipped)")
    parser.add_argument("--out", type=Path, default=THRESHOLDS_FILE)
    parser.add_argument("--check", type=Path, default=None,
                        help="a robustness benchmark JSON whose thresholds must be reproduced")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest difference --check accepts (features recomputed on "
                             "another machine differ by float rounding)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = calibrate(args.lfw, args.cache_dir, args.distractors, THRESHOLD_FARS)
    write_json(args.out, {"command": "python " + shlex.join(sys.argv), **result})
    print(f"wrote {args.out}")
    if args.check is not None:
        gap = compare(result, args.check)
        print(f"largest difference to {args.check}: {gap:.3g}")
        if gap > args.tolerance:
            sys.exit(1)


if __name__ == "__main__":
    main()

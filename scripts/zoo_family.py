"""Zoo families: do two recognizers see faces alike? Pearson r of their pairwise similarities.

For the same LFW photos (MTCNN, 5-point alignment, each model's own crop) every model gives a
cosine similarity per photo pair; :func:`evaluation.zoo.similarity_correlations` correlates
those across models. r near 1 = one model (same weights, or features up to a rotation);
unrelated recognizers agree less. The leave-one-out families of
:mod:`evaluation.protocol.folds` cite this table. Writes JSON (``--out``) and the
``zoo-family`` section of ``docs/BENCHMARKS.md``.

    python scripts/zoo_family.py                  # 25 people x 2 photos, all 8 recognizers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from evaluation.paths import DEFAULT_LFW, REPO
from evaluation.protocol.lfw import identity_photos
from evaluation.report import markdown_table, publish
from evaluation.zoo import detect_and_align, embed_all, similarity_correlations

#: dlib-native runs dlib-resnet's weights in dlib's own runtime: the same-model yardstick.
MODELS = ["facenet", "dlib-resnet", "dlib-native", "sface", "mobilefacenet", "faceres",
          "faceres-deep", "mobileface"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--people", type=int, default=25, help="first N people by name")
    parser.add_argument("--per-person", type=int, default=2, help="first N photos per person")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "zoo_family.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--section", default="zoo-family", help="markdown section to replace")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    photos = identity_photos(args.lfw, args.per_person, args.people)
    frames, kept, _ = detect_and_align(photos, batch=16, progress=False)
    features = {m: embed_all(m, frames, 32, progress=False)[0] for m in args.models}
    r = similarity_correlations(features)
    pairs = len(kept) * (len(kept) - 1) // 2
    command = " ".join(["python scripts/zoo_family.py", *sys.argv[1:]])
    body = (f"## Zoo families: Pearson r of pairwise similarities\n\n`{command}`: "
            f"{len(kept)} LFW photos with a face (of {len(photos)}; {args.people} people x "
            f"{args.per_person}), {pairs} photo pairs; each cell correlates two recognizers' "
            f"cosine similarities of the same pairs (1 = the same model up to a rotation).\n\n"
            + markdown_table(["", *args.models],
                             [[a, *[r[a][b] for b in args.models]] for a in args.models]) + "\n")
    result = {"benchmark": "zoo families: Pearson r of pairwise cosine similarities",
              "photos": [str(photos[i].path.relative_to(args.lfw)) for i in kept],
              "pairs": pairs, "models": args.models, "pearson_r": r}
    print(publish(result, body, args.out, args.markdown, command, args.section))


if __name__ == "__main__":
    main()

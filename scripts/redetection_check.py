"""Does re-detecting and re-aligning a protected photo wash the mask out?

For one LFW person: learn a mask on the first 10 photos (mode ``fast``: facenet + dlib-resnet,
``--steps`` steps), then for the next 5 photos compare, per recognizer, the protected probe's
cosine similarity to the person's clean class centre and to its own clean photo when the
protected face is taken (a) straight from the optimiser's paste path with the clean alignment
("direct") and (b) from the written photo (pasted, rounded to 8 bits), detected and aligned
again ("redetected"), as an attacker would. Writes JSON and prints a markdown table.

    python scripts/redetection_check.py --person Colin_Powell --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import attackers
from cloak.faces import align_faces
from cloak.opom import MODES, learn_mask, protect_photo, protected_frames, training_face
from evaluation.protocol.lfw import central_face_index, load_rgb
from evaluation.report import markdown_table, write_json, write_markdown_section

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw" / "identities"
RECOGNIZERS = ("facenet", "dlib-resnet", "sface", "mobilefacenet", "faceres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "redetection_check.json")
    args = parser.parse_args()

    detector = attackers.load("mtcnn")

    def central_face(image: torch.Tensor):
        found = align_faces([image], detector)[0]
        boxes = torch.stack([f.detection.box for f in found])
        return found[central_face_index(boxes, tuple(image.shape[1:]))]

    images = [load_rgb(p) for p in sorted((LFW / args.person).glob("*.jpg"))[:15]]
    faces = [central_face(img) for img in images]
    mode = MODES["fast"]
    config = dataclasses.replace(mode.config, steps=args.steps)
    pairs = list(zip(images, faces, strict=True))
    delta = learn_mask([training_face(i, f) for i, f in pairs[:10]],
                       [attackers.load(n) for n in mode.surrogates], config)
    clean = torch.stack([f.frame for f in faces])
    with torch.no_grad():
        direct = protected_frames([training_face(i, f) for i, f in pairs[10:]],
                                  delta, config.paste, config.feather)
        redetected = torch.stack([
            central_face(protect_photo(img, [f], delta, config.feather).round()).frame
            for img, f in pairs[10:]])
        rows = []
        for name in RECOGNIZERS:
            model = attackers.load(name)
            centre = F.normalize(model.embed(clean[:10]).mean(0), dim=0)
            own = model.embed(clean[10:])
            row = {"recognizer": name, "surrogate": name in mode.surrogates}
            for label, frames in (("clean", clean[10:]), ("direct", direct),
                                  ("redetected", redetected)):
                emb = model.embed(frames)
                row[f"{label}_to_centre"] = float((emb @ centre).mean())
                row[f"{label}_to_own_clean"] = float((emb * own).sum(1).mean())
            rows.append(row)
    command = " ".join(["python scripts/redetection_check.py", *sys.argv[1:]])
    write_json(args.out, {"command": command, "person": args.person, "steps": args.steps,
                          "surrogates": list(mode.surrogates), "rows": rows})
    table = markdown_table(
        ["recognizer", "surrogate", "clean->centre", "direct->centre", "redetected->centre",
         "direct->own clean", "redetected->own clean"],
        [[r["recognizer"], "yes" if r["surrogate"] else "no", r["clean_to_centre"],
          r["direct_to_centre"], r["redetected_to_centre"], r["direct_to_own_clean"],
          r["redetected_to_own_clean"]] for r in rows])
    write_markdown_section(args.markdown, "redetection", (
        f"## Does re-detection wash the mask out?\n\n`{command}`: mean cosine similarity of the "
        f"5 protected probes of {args.person} to the clean class centre and to their own clean "
        f"photo; mask learned on {', '.join(mode.surrogates)} ({args.steps} steps).\n\n{table}\n"))
    print(table)


if __name__ == "__main__":
    main()

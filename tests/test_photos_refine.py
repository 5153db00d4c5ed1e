"""``cloak protect --refine`` on real photos and a real model: each face gets its own refined
mask, the run's photos are refined together, and an interrupted run resumes with its new copies
kept apart from the ones already written.

The mask is learned with tiny settings (2 steps, dlib-resnet) from 4 LFW photos of one person;
the optimiser has its own tests (test_opom.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import lfw_photos

from cloak.faces import align_faces
from cloak.imageio import read_photo
from cloak.mask import load_mask
from cloak.masking import REFINE, LearnSettings
from cloak.photos import MANIFEST_NAME, FileResult, ProtectOptions, Reporter, protect
from cloak.photos.write import REFINE_BATCH

FAST = LearnSettings(steps=2, surrogates=("dlib-resnet",))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StepRecorder(Reporter):
    """Records the refinement's progress: (done, total) optimiser steps, and photos read for
    the person's center."""

    def __init__(self) -> None:
        self.done: list[tuple[int, int]] = []
        self.centered: list[tuple[int, int]] = []

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage == "refining":
            self.done.append((done, total))
        elif stage == "finding the person's center":
            self.centered.append((done, total))


class Interrupted(Exception):
    """Stands for Ctrl-C while a run writes."""


class InterruptAfterFirstWrite(Reporter):
    def file_done(self, result: FileResult) -> None:
        if result.status == "protected":
            raise Interrupted


@pytest.fixture(scope="module")
def colin(tmp_path_factory) -> dict:
    """4 photos of Colin Powell in a folder, and the mask file one protect run learned."""
    folder = tmp_path_factory.mktemp("refine") / "Colin"
    folder.mkdir()
    mine = lfw_photos("Colin_Powell", 4)
    for path in mine:
        shutil.copy2(path, folder / path.name)
    summary = protect([folder], ProtectOptions(learn=FAST))
    return {"folder": folder, "mask": summary.output / "Colin.cloak",
            "mine": [p.name for p in mine]}


def test_refine_pushes_each_face_further(colin: dict, tmp_path: Path, mtcnn) -> None:
    """--refine: each face gets the mask plus a few steps of its own; on the mask's surrogate its
    features move further from the clean face's than with the universal mask; reruns skip."""
    import attackers

    mask = load_mask(colin["mask"])
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in colin["mine"][:3]:
        shutil.copy2(colin["folder"] / name, photos / name)
    plain = protect([photos], ProtectOptions(mask=mask, output=tmp_path / "plain"))
    steps = StepRecorder()
    refined = protect([photos], ProtectOptions(mask=mask, output=tmp_path / "refined",
                                               refine=3), steps)
    assert steps.done == [(1, 3), (2, 3), (3, 3)]    # one batch of 3 faces, 3 steps
    assert steps.centered == [(1, 3), (2, 3), (3, 3)]
    assert [r.status for r in refined.files] == ["protected"] * 3
    recognizer = attackers.load("dlib-resnet")
    drops = []
    for before, after in zip(plain.files, refined.files, strict=True):
        frames = [align_faces([read_photo(p).pixels], mtcnn)[0][0].frame
                  for p in (before.path, before.output, after.output)]
        with torch.no_grad():
            clean, universal, own = recognizer.embed(torch.stack(frames))
        drops.append(float(clean @ universal - clean @ own))
    print(f"\nrefine 3 steps: cosine to the clean face lower by {np.round(drops, 3)}")
    assert min(drops) > 0.0 and np.mean(drops) > 0.02
    again = protect([photos], ProtectOptions(mask=mask, output=tmp_path / "refined", refine=3))
    assert [r.status for r in again.files] == ["up-to-date"] * 3
    assert load_mask(colin["mask"]).delta.equal(mask.delta)



@pytest.mark.data
def test_refine_resumes_apart_from_the_copies_written(colin: dict, tmp_path: Path) -> None:
    """--refine refines a run's photos together; a run interrupted after its first copy
    resumes: the rerun keeps that copy and refines the rest apart from it, so they differ from
    a fresh run on the remaining photos alone; the progress file records the batch size, the
    subspace pushed from, the DI draws per step, their scale invariance and Nesterov
    look-ahead (a copy refined another way is not up to date)."""
    mask = load_mask(colin["mask"])
    photos, rest = tmp_path / "photos", tmp_path / "rest"
    photos.mkdir()
    rest.mkdir()
    for name in colin["mine"][:3]:
        shutil.copy2(colin["folder"] / name, photos / name)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        protect([photos], ProtectOptions(mask=mask, output=out, refine=2),
                InterruptAfterFirstWrite())
    manifest = json.loads((out / MANIFEST_NAME).read_text())["files"]
    (kept, entry), = manifest.items()
    assert entry["key"]["refine"] == 2 and entry["key"]["refine_batch"] == REFINE_BATCH
    assert {k: entry["key"][k] for k in REFINE.settings()} == {
        "refine_from": "center", "refine_draws": 3, "refine_si": True, "refine_ni": True}
    before = (out / kept).read_bytes()
    rerun = protect([photos], ProtectOptions(mask=mask, output=out, refine=2))
    assert sorted(r.status for r in rerun.files) == ["protected"] * 2 + ["up-to-date"]
    assert (out / kept).read_bytes() == before
    left = sorted(set(colin["mine"][:3]) - {kept})
    for name in left:
        shutil.copy2(photos / name, rest / name)
    fresh = protect([rest], ProtectOptions(mask=mask, output=tmp_path / "fresh", refine=2))
    assert [r.status for r in fresh.files] == ["protected"] * 2
    for name in left:
        assert (out / name).read_bytes() != (tmp_path / "fresh" / name).read_bytes(), name

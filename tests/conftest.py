"""Shared test helpers: the one way tests reach the real data in ../shared/data.

Tests never copy that data into the repo; when it is absent they skip with a clear reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (expected ../shared/data beside the repo)")
    return path


def lfw_photos(person: str, count: int) -> list[Path]:
    """The first ``count`` LFW photos of ``person`` (e.g. ``"Ariel_Sharon"``)."""
    folder = shared_data("lfw", "identities", person)
    return sorted(folder.glob("*.jpg"))[:count]


def read_rgb(path: Path):
    """A photo as a (3, H, W) float32 RGB tensor in [0, 255] (EXIF orientation ignored)."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as img:
        array = np.array(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


#: People and photo count of the ``lfw_frames`` fixture.
LFW_FRAME_PEOPLE = ("Ariel_Sharon", "Colin_Powell", "Serena_Williams")
LFW_FRAME_COUNT = 4


@pytest.fixture(scope="session")
def mtcnn():
    """The real MTCNN detector (zoo model ``"mtcnn"``), loaded once per session."""
    import attackers

    return attackers.load("mtcnn")


@pytest.fixture(scope="session")
def lfw_frames(mtcnn) -> dict:
    """Canonical frames of the named person: person -> (4, 3, 224, 224) float32 in [0, 255].

    The first 4 LFW photos of each of :data:`LFW_FRAME_PEOPLE`, detected in one batch. LFW
    centres the labelled person, so of several faces the one whose box centre is nearest the
    photo centre is taken (the top-scoring face is a bystander in Ariel_Sharon_0004.jpg).
    """
    import torch

    from cloak.faces import align_faces

    paths = {p: lfw_photos(p, LFW_FRAME_COUNT) for p in LFW_FRAME_PEOPLE}
    flat = [path for p in LFW_FRAME_PEOPLE for path in paths[p]]
    images = [read_rgb(path) for path in flat]
    faces = align_faces(images, mtcnn)
    missing = [path.name for path, found in zip(flat, faces, strict=True) if not found]
    if missing:
        raise RuntimeError(f"MTCNN found no face in {', '.join(missing)}")

    def centred(image, found):
        centre = torch.tensor(image.shape[:0:-1], dtype=torch.float32) / 2
        return min(found, key=lambda f: float(((f.detection.box[:2] + f.detection.box[2:]) / 2
                                               - centre).norm()))

    frames = iter([centred(img, found).frame for img, found in zip(images, faces, strict=True)])
    return {p: torch.stack([next(frames) for _ in paths[p]]) for p in LFW_FRAME_PEOPLE}

"""Shared test helpers: the one way tests reach the real data in ../shared/data.

Tests never copy that data into the repo; when it is absent they skip with a clear reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


#: Fixtures that read real data or load real models: a test using one is marked ``data``.
DATA_FIXTURES = frozenset({"mtcnn", "lfw_frames", "lfw_faces"})

#: True while a test without the ``data`` marker runs (set before its fixtures).
_unit_only = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a :data:`DATA_FIXTURES` fixture as ``data``."""
    for item in items:
        if DATA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Record whether the test about to run is a unit test (no ``data`` marker)."""
    global _unit_only
    _unit_only = item.get_closest_marker("data") is None


def _require_data_marker(what: str) -> None:
    """Fail a unit test that reaches real data or models, so ``-m "not data"`` stays honest."""
    if _unit_only:
        pytest.fail(f"this test {what}: mark it @pytest.mark.data", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _models_need_data_marker():
    """Route every zoo fetch through :func:`_require_data_marker` for the whole session."""
    from attackers import zoo

    original = zoo.fetch

    def guarded(name: str, *args, **kwargs):
        _require_data_marker(f"loads the real model {name!r}")
        return original(name, *args, **kwargs)

    zoo.fetch = guarded
    yield
    zoo.fetch = original


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test when it is missing.

    A test that calls it must carry the ``data`` marker (a unit test fails here).
    """
    _require_data_marker(f"reads ../shared/data/{'/'.join(parts)}")
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (expected ../shared/data beside the repo)")
    return path


def video_people_args(root: Path, people: tuple[str, str]) -> list[str]:
    """``cloak video`` options enrolling two LFW people: a flat +8 / -8 mask each (easy to see in
    the output) and their photos 10-14 as ``--reference`` folders under ``root``."""
    import shutil

    import torch

    from attackers.frame import FRAME_SIZE
    from cloak.mask import Mask, save_mask

    args = []
    for person, sign in zip(people, (1.0, -1.0), strict=True):
        refs = root / f"ref_{person}"
        refs.mkdir()
        for photo in lfw_photos(person, 15)[10:15]:
            shutil.copy2(photo, refs / photo.name)
        mask = Mask(torch.full((3, FRAME_SIZE, FRAME_SIZE), 8.0 * sign), 8.0, "center",
                    ["facenet"], person, 0, settings={"feather": 24.0})
        args += ["--mask", str(save_mask(mask, root / f"{person}.cloak")),
                 "--reference", f"{person}={refs}"]
    return args


def lfw_photos(person: str, count: int) -> list[Path]:
    """The first ``count`` LFW photos of ``person`` (e.g. ``"Ariel_Sharon"``)."""
    folder = shared_data("lfw", "identities", person)
    return sorted(folder.glob("*.jpg"))[:count]


@pytest.fixture
def colin_photos(tmp_path: Path) -> Path:
    """A folder ``<tmp_path>/Colin`` with 3 LFW photos of Colin Powell."""
    import shutil

    folder = tmp_path / "Colin"
    folder.mkdir()
    for path in lfw_photos("Colin_Powell", 3):
        shutil.copy2(path, folder / path.name)
    return folder


def zero_mask_file(path: Path, person: str) -> Path:
    """Save an all-zero mask of ``person`` (eps 8, surrogate dlib-resnet) at ``path``."""
    import torch

    from cloak.mask import Mask, save_mask

    return save_mask(Mask(torch.zeros(3, 224, 224), eps=8.0, subspace="center",
                          surrogates=["dlib-resnet"], person=person, seed=0), path)


def check_usage_error(args: list[str], message: str, photos: Path, tmp_path: Path) -> None:
    """``cloak ARGS`` ({photos} and {mask} filled in: ``photos``, and an all-zero mask of "Ada"
    under ``tmp_path``) stops before any work with exit code 2 and ``message``."""
    from click.testing import CliRunner

    from cloak.cli import main

    mask = zero_mask_file(tmp_path / "ada.cloak", "Ada")
    argv = [a.format(photos=photos, mask=mask) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "Colin_cloaked").exists()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's heavy tests, restored afterwards.

    On a 2-core machine shared with other jobs, two torch threads per process stall each other
    (measured 2-5x slower); a quiet machine loses little with one.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recorded_crops(items: list[dict], start: int, size: int):
    """Fixed central crops of the photos a recorded reference was made on, checked by sha256.

    Args:
        items: the reference file's items, each with ``photo`` (path under ../shared/data) and
            ``crop_sha256`` (of the uint8 crop the reference runtime saw).
        start: first row and column of the square crop.
        size: its side in pixels.

    Returns:
        (len(items), 3, size, size) float32 RGB in [0, 255].
    """
    import hashlib

    import numpy as np
    import torch
    from PIL import Image

    crops = []
    for item in items:
        with Image.open(shared_data(item["photo"])) as img:
            rgb = np.asarray(img.convert("RGB"))
        crop = np.ascontiguousarray(rgb[start:start + size, start:start + size])
        assert hashlib.sha256(crop.tobytes()).hexdigest() == item["crop_sha256"], (
            f"{item['photo']}: decoded pixels differ from the recorded ones (JPEG decoder?)")
        crops.append(torch.from_numpy(crop).permute(2, 0, 1).float())
    return torch.stack(crops)


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
    from evaluation.lfw import central_face_index, load_rgb

    paths = {p: lfw_photos(p, LFW_FRAME_COUNT) for p in LFW_FRAME_PEOPLE}
    flat = [path for p in LFW_FRAME_PEOPLE for path in paths[p]]
    images = [load_rgb(path) for path in flat]
    faces = align_faces(images, mtcnn)
    missing = [path.name for path, found in zip(flat, faces, strict=True) if not found]
    if missing:
        raise RuntimeError(f"MTCNN found no face in {', '.join(missing)}")

    def centred(image, found):
        boxes = torch.stack([f.detection.box for f in found])
        return found[central_face_index(boxes, tuple(image.shape[1:]))]

    frames = iter([centred(img, found).frame for img, found in zip(images, faces, strict=True)])
    return {p: torch.stack([next(frames) for _ in paths[p]]) for p in LFW_FRAME_PEOPLE}


@pytest.fixture(scope="session")
def lfw_faces(lfw_frames) -> tuple:
    """The ``lfw_frames`` stacked: frames (12, 3, 224, 224) in [0, 255] and int labels (12,)."""
    import torch

    people = list(lfw_frames)
    labels = torch.cat([torch.full((len(lfw_frames[p]),), i) for i, p in enumerate(people)])
    return torch.cat([lfw_frames[p] for p in people]), labels


def pair_similarities(emb, labels) -> tuple:
    """Cosine similarities of every unordered same-person and different-person pair.

    Args:
        emb: (N, D) L2-normalised embeddings.
        labels: (N,) int person labels.

    Returns:
        (same, different): 1-D tensors of pair similarities.
    """
    sim = emb @ emb.T
    same = labels[:, None] == labels[None]
    upper = sim.new_ones(sim.shape, dtype=bool).triu(1)
    return sim[same & upper], sim[~same & upper]

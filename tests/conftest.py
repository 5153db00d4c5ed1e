"""Shared test helpers: the one way tests reach the real data in ../shared/data.

Tests never copy that data into the repo; when it is absent they skip with a clear reason.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cloak.faces import AlignedFace
    from cloak.video.container import VideoInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


#: Fixtures that read real data or load real models: a test using one is marked ``data``.
DATA_FIXTURES = frozenset({"mtcnn", "lfw_frames", "lfw_faces", "lfw_images", "group_photo"})

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


def lfw_aligned(person: str, count: int, mtcnn) -> list[tuple[torch.Tensor, AlignedFace]]:
    """(photo (3, H, W) float32 in [0, 255], its central aligned face) for each of the first
    ``count`` LFW photos of ``person``, found by ``mtcnn`` (every one must hold a face)."""
    from evaluation.protocol.lfw import central_faces, load_rgb

    photos = [load_rgb(p) for p in lfw_photos(person, count)]
    faces = central_faces(photos, mtcnn)
    assert all(f is not None for f in faces), "MTCNN found no face in an LFW photo"
    return list(zip(photos, faces, strict=True))


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


def numpy_ssim(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> float:
    """SSIM written out after Wang et al. (2004): Gaussian window 11, sigma 1.5, valid windows,
    mean over channels; ``a`` and ``b`` (C, H, W) float64."""
    from scipy.signal import correlate2d

    x = np.arange(11) - 5.0
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    maps = []
    for u, v in zip(a, b, strict=True):
        mu_u, mu_v = correlate2d(u, w, "valid"), correlate2d(v, w, "valid")
        var_u = correlate2d(u * u, w, "valid") - mu_u ** 2
        var_v = correlate2d(v * v, w, "valid") - mu_v ** 2
        cov = correlate2d(u * v, w, "valid") - mu_u * mu_v
        maps.append((2 * mu_u * mu_v + c1) * (2 * cov + c2)
                    / ((mu_u ** 2 + mu_v ** 2 + c1) * (var_u + var_v + c2)))
    return float(np.mean(maps))


# -- video clips (cloak.video) ------------------------------------------------------------------

#: Test clips of :func:`make_clip` (cloak.video): size, frame rate and frame count.
CLIP_WIDTH, CLIP_HEIGHT, CLIP_FPS, CLIP_FRAMES = 160, 120, 25, 48
#: Irregular frame gaps (ms) of the VFR clip, repeated: 40, 80, 40, 120, ...
CLIP_VFR_GAPS = (40, 80, 40, 120)
#: Mean absolute difference (levels of 255) allowed between decoded frames and the pattern they
#: were made from, and across a CRF-18 round trip. Measured: decoding about 1.55 (4:2:0 chroma),
#: round trip 1.7-1.9 (a 720p clip: 1.4); reading a BT.709 clip with BT.601 coefficients: 6.8,
#: writing it with them: 6.3.
MAX_MEAN_ERROR = 2.5


def pattern(i: int, width: int = CLIP_WIDTH, height: int = CLIP_HEIGHT,
            marker: bool = False) -> np.ndarray:
    """Frame ``i`` of a smooth moving colour pattern, (height, width, 3) uint8 RGB."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 90 * np.sin(2 * math.pi * (x / width + i / CLIP_FRAMES))
    g = 128 + 90 * np.cos(2 * math.pi * y / height)
    b = 128 + 60 * np.sin(2 * math.pi * (x + y) / (width + height) + i / 8)
    image = np.stack([r, g, b], axis=-1).round().astype(np.uint8)
    if marker:  # a white block in the stored top-left corner, to see where rotation takes it
        image[:20, :30] = 255
    return image


def make_clip(path: Path, *, width: int = CLIP_WIDTH, height: int = CLIP_HEIGHT,
              audio: str | None = "aac", rotation_ccw: int = 0, vfr: bool = False,
              bt709: bool = False, codec: str = "libx264", pix_fmt: str = "yuv420p",
              marker: bool = False, pixel_aspect: Fraction | None = None) -> list[np.ndarray]:
    """Write a test clip with PyAV itself (x264 at a near-lossless CRF, real AAC and Opus
    encoders), small enough (160x120, 48 frames) to be made in a moment on one core; return the
    (H, W, 3) uint8 RGB frames it was made from."""
    import av
    import numpy as np

    images = [pattern(i, width, height, marker) for i in range(CLIP_FRAMES)]
    time_base = Fraction(1, 1000) if vfr else Fraction(1, CLIP_FPS)
    with av.open(str(path), "w") as out:
        options = {"crf": "10", "preset": "ultrafast"} if codec == "libx264" else {}
        video = out.add_stream(codec, rate=CLIP_FPS, options=options)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = time_base
        video.codec_context.thread_count = 1
        if bt709:
            ctx = video.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1
            ctx.color_range = 1
        if rotation_ccw:
            video.set_display_rotation(rotation_ccw)
        if pixel_aspect:
            video.codec_context.sample_aspect_ratio = pixel_aspect
        sound = out.add_stream(audio, rate=48000, layout="mono") if audio else None
        stamp = 0
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace="itu709" if bt709 else None,
                                   dst_color_range=1 if bt709 else None)
            frame.pts, frame.time_base = stamp, time_base
            stamp += CLIP_VFR_GAPS[i % len(CLIP_VFR_GAPS)] if vfr else 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            rate, size = 48000, sound.codec_context.frame_size or 1024
            for start in range(0, rate * CLIP_FRAMES // CLIP_FPS, size):
                t = np.arange(start, start + size) / rate
                tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return images


def audio_packets(path: Path) -> list[tuple[bytes, Fraction]]:
    """Payload and start time (seconds) of every audio packet, in file order."""
    import av

    with av.open(str(path)) as container:
        return [(bytes(p), p.pts * p.time_base) for p in container.demux(audio=0) if p.size]


def decode_all(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames (N, 3, H, W) and their times (N,) in seconds."""
    import torch

    from cloak.video.reading import read_frames

    batches = list(read_frames(path, batch_size=16, threads=1))
    return torch.cat([b.frames for b in batches]), torch.cat([b.times for b in batches])


def round_trip(src: Path, dest: Path, **kwargs) -> VideoInfo:
    """Decode ``src`` and encode it unchanged to ``dest`` (preset veryfast, one thread; kwargs go
    to :class:`~cloak.video.writing.VideoWriter`); return the source's probe."""
    from cloak.video.container import probe
    from cloak.video.reading import read_frames
    from cloak.video.writing import VideoWriter

    info = probe(src)
    with VideoWriter(dest, info, preset="veryfast", threads=1, **kwargs) as out:
        for batch in read_frames(src, batch_size=20, threads=1):
            out.write(batch.frames, batch.pts)
    return info


# -- face tracks on a crossing clip (cloak.video.detection, cloak.video.tracks) -----------------

#: The two people of :func:`crossing_clip` (photo 0 each) and its stranger (an LFW distractor).
CROSSING_PEOPLE = ("Colin_Powell", "Serena_Williams")
CROSSING_STRANGER = "AJ_Cook_0001.jpg"
CROSSING_FRAMES = 40


@pytest.fixture(scope="session")
def sface():
    """The real SFace recognizer."""
    import attackers

    return attackers.load("sface")


@pytest.fixture(scope="session")
def crossing_clip(mtcnn, tmp_path_factory):
    """A synthetic clip of real LFW faces (:mod:`evaluation.video_clips`) and the path of its
    H.264 encoding: 320x240, 40 frames, Colin Powell and Serena Williams swapping sides (passing
    within a face height of each other, their cut-outs overlapping) and a stranger, with an AAC
    tone. Ground truth is each photo's own detection carried through the known motion."""
    from evaluation.video_clips import crossing_scene, render_clip, write_clip

    people = [lfw_photos(p, 1)[0] for p in CROSSING_PEOPLE]
    stranger = shared_data("lfw", "distractors", CROSSING_STRANGER)
    scene = render_clip(crossing_scene(people, stranger), mtcnn, size=(320, 240),
                        frames=CROSSING_FRAMES, seed=0)
    path = tmp_path_factory.mktemp("clip") / "crossing.mp4"
    write_clip(scene, path)
    return scene, path


def crossing_batches(path: Path):
    """Decoded frames of ``path`` in batches of 6 (not a multiple of the stride)."""
    from cloak.video.reading import read_frames

    return (batch.frames for batch in read_frames(path, batch_size=6, threads=1))


@pytest.fixture(scope="session")
def crossing_dense(crossing_clip, mtcnn):
    """Detections of :func:`crossing_clip` on every frame, no embeddings."""
    from cloak.video.detection import detect_faces

    return detect_faces(crossing_batches(crossing_clip[1]), mtcnn, stride=1)


@pytest.fixture(scope="session")
def crossing_strided(crossing_clip, mtcnn, sface):
    """Detections and embeddings of :func:`crossing_clip` at the default stride."""
    from cloak.video.detection import DEFAULT_STRIDE, detect_faces

    return detect_faces(crossing_batches(crossing_clip[1]), mtcnn, stride=DEFAULT_STRIDE,
                        recognizer=sface)


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


@pytest.fixture(scope="module")
def dlib():
    """The dlib-resnet recognizer (a white box), loaded once per test module."""
    import attackers

    return attackers.load("dlib-resnet")


@pytest.fixture(scope="module")
def age_gender():
    """The age-gender attribute predictor (a white box), loaded once per test module."""
    import attackers

    return attackers.load("age-gender")


@pytest.fixture(scope="session")
def mtcnn():
    """The real MTCNN detector (zoo model ``"mtcnn"``), loaded once per session."""
    import attackers

    return attackers.load("mtcnn")


@pytest.fixture(scope="session")
def lfw_images() -> list:
    """Two LFW photos of each of :data:`LFW_FRAME_PEOPLE` (6 photos, (3, 250, 250) float32)."""
    from evaluation.protocol.lfw import load_rgb

    return [load_rgb(p) for person in LFW_FRAME_PEOPLE for p in lfw_photos(person, 2)]


@pytest.fixture(scope="session")
def group_photo():
    """bbt4.jpg: (3, 473, 710) float32 RGB in [0, 255], six people facing the camera."""
    from evaluation.protocol.lfw import load_rgb

    return load_rgb(shared_data("bbt", "bbt4.jpg"))


@pytest.fixture(scope="session")
def lfw_frames(mtcnn) -> dict:
    """Canonical frames of the named person: person -> (4, 3, 224, 224) float32 in [0, 255].

    The first 4 LFW photos of each of :data:`LFW_FRAME_PEOPLE`, detected in one batch. LFW
    centres the labelled person, so of several faces the one whose box centre is nearest the
    photo centre is taken (the top-scoring face is a bystander in Ariel_Sharon_0004.jpg).
    """
    import torch

    from cloak.faces import align_faces
    from evaluation.protocol.lfw import central_face_index, load_rgb

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


# --- six faces of the attribute metrics' hand computations (tests/test_attribute_metrics_*.py)

import numpy as np  # noqa: E402 (only these constants need numpy)

# Six faces. Sex: predicted male [1, 0, 1, 0, 1, 0] (>= 0.5), labels male [T, F, F, F, T, F]:
# 5 of 6 right; chance = female share 4/6; predictability (5/6 - 4/6) / (1 - 4/6) = 0.5.
MALE_PROB = np.array([0.9, 0.2, 0.6, 0.4, 0.5, 0.1])
MALE = np.array([True, False, False, False, True, False])
# Race: argmax [0, 1, 2, 2, 3, 4]; labels [0, 1, 1, ?, 3, 2]: 3 of the 5 known right;
# chance = 2/5 (race 1); predictability (0.6 - 0.4) / 0.6 = 1/3.
RACE_PROBS = np.eye(5)[[0, 1, 2, 2, 3, 4]] * 0.6 + 0.08
RACE = np.array([0, 1, 1, -1, 3, 2])
# Age: errors [2, 0, 5, 5, 10, 10] -> MAE 32/6; median label 27.5, deviations
# [25.5, 19.5, 2.5, 2.5, 22.5, 42.5] -> baseline 115/6; predictability 1 - 32/115.
AGE_PRED = np.array([4.0, 8.0, 20.0, 35.0, 40.0, 60.0])
AGE = np.array([2, 8, 25, 30, 50, 70])
# Age bins: labels [0, 1, 3, 3, 5, 6], predicted from AGE_PRED [1, 1, 3, 4, 4, 5]: 2 of 6 right;
# chance 2/6 (bin 3); predictability 0.
SEX_P, RACE_P, AGE_P = 0.5, 1 / 3, 1 - 32 / 115

#: Bootstrap settings of the hand computations.
FAST = {"n_boot": 500, "seed": 0}

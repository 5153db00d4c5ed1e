"""Property tests for every reader of a file the user hands over: masks, photos, the progress
file (manifest), videos.

Each property draws damaged or arbitrary inputs (hypothesis) and asserts the reader's contract:
the documented one-line error (MaskError, ImageError, VideoError) or a valid result, never
another exception and never a hang (pytest-timeout stops a hang). Example counts are fixed
(:data:`EXAMPLES`, derandomized) so the module runs in bounded time (15 to 25 s on one core);
the README's "Reliability" section quotes them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import CLIP_FRAMES as FRAMES
from conftest import lfw_photos, make_clip, shared_data
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from attackers.frame import FRAME_SIZE
from cloak.errors import ImageError
from cloak.imageio import read_photo, write_photo
from cloak.mask import Mask, MaskError, load_mask, save_mask
from cloak.photos import MANIFEST_NAME, Manifest, Reporter
from cloak.video.container import VideoError
from cloak.video.reading import read_frames

pytestmark = pytest.mark.timeout(300)

SHAPE = (3, FRAME_SIZE, FRAME_SIZE)
#: Examples per property (the module: 15 to 25 s on one core of a busy 2-core machine).
EXAMPLES = {"mask_round_trip": 200, "mask_damage": 500, "photo_damage": 500, "manifest": 300,
            "video_damage": 100}


def fuzz(name: str) -> settings:
    """The module's hypothesis settings for one property (reproducible, no example database)."""
    return settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

scalars = st.one_of(st.text(max_size=40), st.integers(-(2**53), 2**53),
                    st.floats(allow_nan=False, allow_infinity=False))


def damage(data: st.DataObject, original: bytes, max_flips: int, head: int | None = None) -> bytes:
    """``original`` damaged as drawn: maybe cut at a drawn length, then up to ``max_flips`` bytes
    XORed with a drawn non-zero value (at least one flip when not cut, so it always differs).
    With ``head``, each flip falls in the first ``head`` bytes half the time (where a header is
    parsed)."""
    blob = bytearray(original)
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1), label="length")]
    for _ in range(data.draw(st.integers(0 if len(blob) < len(original) else 1, max_flips),
                             label="flips")):
        if not blob:
            break
        end = min(len(blob), head) if head and data.draw(st.booleans(), label="in head") \
            else len(blob)
        blob[data.draw(st.integers(0, end - 1), label="offset")] ^= data.draw(
            st.integers(1, 255), label="xor")
    return bytes(blob)


def _valid_mask(person: str = "Ariel_Sharon", extra: dict | None = None) -> Mask:
    delta = (torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 8.0
    return Mask(delta=delta, eps=8.0, subspace="convex", surrogates=["facenet", "sface"],
                person=person, seed=0, settings={"steps": 40, "feather": 24.0, **(extra or {})})


@pytest.fixture(scope="module")
def mask_bytes(tmp_path_factory) -> bytes:
    path = save_mask(_valid_mask(), tmp_path_factory.mktemp("mask") / "valid.cloak")
    return path.read_bytes()


@fuzz("mask_round_trip")
@given(person=st.text(min_size=1, max_size=400),
       extra=st.dictionaries(st.text(min_size=1, max_size=20), scalars, max_size=6))
def test_mask_round_trip_for_any_name_and_settings(tmp_path: Path, person: str,
                                                   extra: dict) -> None:
    """Whatever the name and settings (so whatever the header length), a saved mask loads back
    (issue 12's first failure: header lengths 640/896/1152/1408 were refused as pickle)."""
    mask = _valid_mask(person, extra)
    loaded = load_mask(save_mask(mask, tmp_path / "m.cloak"))
    assert loaded.person == person and torch.equal(loaded.delta, mask.delta)
    assert loaded.settings == mask.settings


@fuzz("mask_damage")
@given(data=st.data())
def test_damaged_mask_gives_mask_error(tmp_path: Path, mask_bytes: bytes,
                                       data: st.DataObject) -> None:
    """Truncation and byte flips of a valid mask (flips drawn mostly in the header, where the
    parser's decisions are made): a MaskError naming the file, or a mask that still passes
    every check (a flip inside the pixel data can leave a valid mask)."""
    header_end = 8 + int.from_bytes(mask_bytes[:8], "little")
    path = tmp_path / "damaged.cloak"
    path.write_bytes(damage(data, mask_bytes, 4, head=header_end))
    try:
        mask = load_mask(path)
    except MaskError as err:
        event("refused")
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
    else:
        event("still a valid mask")
        assert mask.delta.shape == SHAPE and float(mask.delta.abs().max()) <= mask.eps + 1e-3


@pytest.mark.timeout(60)
def test_mask_header_claiming_a_huge_length_is_refused_unread(tmp_path: Path,
                                                               mask_bytes: bytes) -> None:
    """A header length of 2**62; one of 1 TiB in a sparse file that really is that long; a
    valid header in a 64 MiB file: each refused without being read (reading 1 TiB would not
    finish within the timeout)."""
    path = tmp_path / "huge.cloak"
    path.write_bytes((2**62).to_bytes(8, "little") + mask_bytes[8:])
    with pytest.raises(MaskError, match="not a valid safetensors mask file"):
        load_mask(path)
    with path.open("wb") as sparse:
        sparse.write((2**40).to_bytes(8, "little"))
        sparse.truncate(2**40 + 8)
    with pytest.raises(MaskError, match=r"too large to be a mask file \(1099512 MB"):
        load_mask(path)
    valid_header = mask_bytes[:8 + int.from_bytes(mask_bytes[:8], "little")]
    with path.open("wb") as sparse:  # a valid header, then 64 MiB of nothing
        sparse.write(valid_header)
        sparse.truncate(64 << 20)
    with pytest.raises(MaskError, match="too large to be a mask file"):
        load_mask(path)


def _photo_sources() -> list[Path]:
    bad = shared_data("bad_inputs")
    return [lfw_photos("Ariel_Sharon", 1)[0], bad / "face.png", bad / "face.webp"]


@pytest.fixture(scope="module")
def photo_blobs() -> list[tuple[str, bytes]]:
    return [(p.suffix, p.read_bytes()) for p in _photo_sources()]


@pytest.mark.data
@fuzz("photo_damage")
@given(data=st.data())
def test_damaged_photo_gives_image_error_or_a_photo(tmp_path: Path, photo_blobs: list,
                                                    data: st.DataObject) -> None:
    """Truncations and byte flips of real JPEG, PNG and WebP files (flips drawn mostly in the
    first 400 bytes, the headers): ImageError naming the file, or a photo that can be written
    back."""
    suffix, original = data.draw(st.sampled_from(photo_blobs), label="source")
    blob = damage(data, original, 6, head=400)
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(blob)
    try:
        photo = read_photo(path)
    except ImageError as err:
        event("refused")
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        return
    event("decoded, written back")
    assert photo.pixels.ndim == 3 and photo.pixels.shape[0] == 3
    # what decodes can be written back (its damaged EXIF, ICC profile, ... included)
    dest = tmp_path / "out" / path.name
    dest.unlink(missing_ok=True)
    try:
        write_photo(photo, photo.pixels + 4.0, dest)
    except ImageError as err:
        assert str(err).startswith(f"{dest}: ") and "\n" not in str(err)
        assert not dest.exists()
    else:
        assert read_photo(dest).pixels.shape == photo.pixels.shape


manifest_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=3),
    max_leaves=12)


@fuzz("manifest")
@given(files=manifest_json, raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_corrupt_manifest_is_rebuilt_not_trusted(files: object, raw: bytes | None) -> None:
    """Any progress file (random bytes, or a cloak header around arbitrary JSON) loads without
    an error, and no output counts as done unless an entry for it matches exactly."""
    with tempfile.TemporaryDirectory() as folder:
        _check_manifest(Path(folder), files, raw)


def _check_manifest(tmp_path: Path, files: object, raw: bytes | None) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    dest = tmp_path / "out" / "a.jpg"
    dest.parent.mkdir()
    dest.write_bytes(b"protected")
    text = raw if raw is not None else json.dumps(
        {"format": "cloak-progress", "version": 1, "files": files}).encode()
    (dest.parent / MANIFEST_NAME).write_bytes(text)
    notes: list[str] = []

    class Notes(Reporter):
        def note(self, message: str) -> None:
            notes.append(message)

    manifest = Manifest(dest.parent, Notes())
    assert manifest.is_done(Path("a.jpg"), source, dest, {"mask": "x"}) is False
    manifest.record(Path("a.jpg"), source, {"mask": "x"})
    again = Manifest(dest.parent, Notes())
    assert again.is_done(Path("a.jpg"), source, dest, {"mask": "x"})


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    """A 160x120 H.264 clip with AAC audio, 48 frames (conftest.make_clip)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path)
    return path.read_bytes()


@fuzz("video_damage")
@given(data=st.data())
def test_damaged_video_gives_video_error_or_frames(tmp_path: Path, clip_bytes: bytes,
                                                   data: st.DataObject) -> None:
    """Truncations and byte flips of a real MP4: VideoError naming the file, or every frame."""
    blob = damage(data, clip_bytes, 6)
    path = tmp_path / "damaged.mp4"
    path.write_bytes(blob)
    try:
        frames = sum(len(batch.frames) for batch in read_frames(path))
    except VideoError as err:
        event("refused")
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
    else:
        event("decoded")
        assert frames == FRAMES

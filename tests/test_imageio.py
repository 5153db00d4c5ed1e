"""Photo reading and writing over every file of ../shared/data/bad_inputs, plus write safety.

The bad-inputs test is parametrised over the folder listing, so a file added there is covered: a
file this test does not know must either load or raise an ImageError that names it.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, shared_data
from PIL import Image

from cloak.errors import ImageError
from cloak.imageio import Photo, iter_photo_paths, read_photo, write_photo

BAD_INPUTS = SHARED_DATA / "bad_inputs"
FILES = sorted(p.relative_to(BAD_INPUTS).as_posix() for p in BAD_INPUTS.rglob("*")
               if p.is_file()) if BAD_INPUTS.is_dir() else []

#: file -> the reason its ImageError must give (the README's "expected" column).
ERRORS = {
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated or corrupt image",
    "not_an_image.jpg": "not an image",
    "tiny_face.jpg": "image too small (24x24)",
    "animated.gif": "animated or multi-page image (2 frames)",
}
#: file -> (format, mode, (width, height)) of the photo read.
LOADS = {
    "UPPERCASE_EXT.JPG": ("JPEG", "RGB", (250, 250)),
    "cmyk.jpg": ("JPEG", "CMYK", (250, 250)),
    "exif_rotated.jpg": ("JPEG", "RGB", (250, 250)),
    "face.png": ("PNG", "RGB", (250, 250)),
    "face.webp": ("WEBP", "RGB", (250, 250)),
    "gray16.png": ("PNG", "I;16", (250, 250)),
    "grayscale.jpg": ("JPEG", "L", (250, 250)),
    "large_48mp.jpg": ("JPEG", "RGB", (8000, 6000)),
    "name with spaces é.jpg": ("JPEG", "RGB", (250, 250)),
    "nested/deeper/face_in_subfolder.jpg": ("JPEG", "RGB", (250, 250)),
    "no_extension": ("JPEG", "RGB", (250, 250)),
    "no_face.jpg": ("JPEG", "RGB", (640, 480)),
    "rgba.png": ("PNG", "RGBA", (250, 250)),
    "with_gps.jpg": ("JPEG", "RGB", (250, 250)),
}
#: the mode written for each mode read.
OUT_MODE = {"RGB": "RGB", "CMYK": "RGB", "L": "L", "I;16": "I;16", "RGBA": "RGBA"}
GPS_IFD = 0x8825


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rgb_of(path: Path) -> np.ndarray:
    """Plain Pillow RGB float (H, W, 3) of a file, as stored (no orientation applied)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def hwc(photo: Photo) -> np.ndarray:
    return photo.pixels.permute(1, 2, 0).double().numpy()


@pytest.mark.data
@pytest.mark.parametrize("name", FILES)
def test_bad_input(name: str, tmp_path: Path) -> None:
    """Each file loads with the right format/mode/size and round-trips, or fails with its reason."""
    path = shared_data("bad_inputs") / name
    before = sha256(path)
    if name in ERRORS:
        with pytest.raises(ImageError) as caught:
            read_photo(path)
        assert str(caught.value) == f"{path}: {caught.value.reason}"
        assert ERRORS[name] in caught.value.reason
        assert "\n" not in str(caught.value)
    else:
        try:
            photo = read_photo(path)
        except ImageError as err:
            assert name not in LOADS, f"{name} should load: {err}"
            assert str(path) in str(err)
        else:
            if name in LOADS:
                assert (photo.format, photo.mode, (photo.width, photo.height)) == LOADS[name]
            check_round_trip(photo, tmp_path)
    assert sha256(path) == before, "an input was modified"


def check_round_trip(photo: Photo, tmp_path: Path) -> None:
    """Writing unchanged pixels keeps format, size, mode, alpha and the pixels themselves."""
    big = photo.width * photo.height > 4_000_000
    pixels = photo.samples if big else photo.pixels  # uint8 keeps the 48 MP test lean
    dest = write_photo(photo, pixels, tmp_path / "out" / photo.path.name)
    assert os.listdir(dest.parent) == [photo.path.name], "a temporary file was left behind"
    with Image.open(dest) as image:
        assert image.format == photo.out_format
        assert image.size == (photo.width, photo.height)
        assert image.mode == OUT_MODE.get(photo.mode, image.mode)
        if photo.alpha is not None:
            assert np.array_equal(np.asarray(image.getchannel("A")), photo.alpha.numpy())
    back = read_photo(dest)
    if big:  # every 8th row and column: the full 48 MP difference would take 1 GB
        sample = (slice(None), slice(None, None, 8), slice(None, None, 8))
        diff = (back.samples[sample].float() - photo.samples[sample].float()).abs().mean().item()
    else:
        diff = np.abs(hwc(back) - hwc(photo)).mean()
    if photo.out_format == "JPEG":
        assert diff < 1.5  # re-encoding at quality 95, 4:4:4
    else:
        assert torch.equal(back.samples, photo.samples)  # lossless: bit-exact, 16-bit included


@pytest.mark.data
@pytest.mark.parametrize("name", ["exif_rotated.jpg", "cmyk.jpg", "face.webp", "with_gps.jpg"])
def test_display_colours_and_orientation(name: str) -> None:
    """Upright, right-coloured pixels: each file matches the PNG it was generated from."""
    folder = shared_data("bad_inputs")
    reference = rgb_of(folder / "face.png")
    error = np.abs(hwc(read_photo(folder / name)) - reference).mean()
    assert error < 2.0, f"{name}: mean abs difference {error:.2f} from face.png"


@pytest.mark.data
def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    """Stored turned (orientation 6): read, it is upright; written, it stays so."""
    path = shared_data("bad_inputs", "exif_rotated.jpg")
    with Image.open(path) as image:
        assert image.getexif()[0x0112] == 6
    stored, reference = rgb_of(path), rgb_of(path.with_name("face.png"))
    assert np.abs(stored - reference).mean() > 30  # as stored it is not upright
    assert np.abs(np.rot90(stored, k=-1) - reference).mean() < 2  # turned clockwise it is
    photo = read_photo(path)
    dest = write_photo(photo, photo.pixels, tmp_path / "rotated.jpg")
    with Image.open(dest) as image:
        assert image.getexif()[0x0112] == 1
        assert np.abs(np.asarray(image, dtype=np.float64) - reference).mean() < 2


@pytest.mark.data
def test_greyscale_stays_grey(tmp_path: Path) -> None:
    """A colour perturbation on a greyscale photo is written as its luma, in mode L."""
    photo = read_photo(shared_data("bad_inputs", "grayscale.jpg"))
    assert photo.is_grey and photo.samples.shape == (1, 250, 250)
    pixels = photo.pixels
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
    shifted = (pixels + torch.tensor([6.0, -2.0, 4.0])[:, None, None]).clamp(0, 255)
    dest = write_photo(photo, shifted, tmp_path / "grey.jpg")
    with Image.open(dest) as image:
        assert (image.format, image.mode) == ("JPEG", "L")
        written = np.asarray(image, dtype=np.float64)
    expected = np.rint(np.tensordot([0.299, 0.587, 0.114], shifted.double().numpy(), axes=1))
    assert np.abs(written - expected).mean() < 1.0


@pytest.mark.data
def test_sixteen_bit_kept(tmp_path: Path) -> None:
    """16-bit greyscale stays 16-bit: pixels come back bit-exact, a +1 change as +257."""
    path = shared_data("bad_inputs", "gray16.png")
    photo = read_photo(path)
    assert photo.bit_depth == 16 and photo.samples.dtype == torch.int32
    with Image.open(path) as image:
        assert np.array_equal(photo.samples[0].numpy(), np.asarray(image))
    brighter = photo.pixels + 1.0
    back = read_photo(write_photo(photo, brighter, tmp_path / "g16.png"))
    expected = np.clip(photo.samples.numpy() + 257, 0, 65535)
    assert back.mode == "I;16" and np.array_equal(back.samples.numpy(), expected)


@pytest.mark.data
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_removed_by_default(fmt: str, tmp_path: Path) -> None:
    """GPS is dropped from the output unless asked; the rest of the EXIF stays."""
    path = shared_data("bad_inputs", "with_gps.jpg")
    with Image.open(path) as image:
        assert image.getexif().get_ifd(GPS_IFD), "fixture lost its GPS"
        if fmt != "JPEG":  # the same photo and EXIF in another format
            path = tmp_path / f"with_gps.{fmt.lower()}"
            image.save(path, format=fmt, exif=image.info["exif"], lossless=True)
    photo = read_photo(path)
    assert photo.format == fmt
    for keep in (False, True):
        dest = write_photo(photo, photo.pixels, tmp_path / "out" / f"{keep}.{fmt.lower()}",
                           keep_location=keep)
        with Image.open(dest) as image:
            exif = image.getexif()
            assert image.format == fmt
            assert bool(exif.get_ifd(GPS_IFD)) == keep and (GPS_IFD in exif) == keep
            assert exif[0x0112] == 1


@pytest.mark.data
def test_exif_thumbnail_dropped(tmp_path: Path) -> None:
    """The EXIF thumbnail (an unprotected copy of the face) is never written."""
    face = shared_data("bad_inputs", "face.png")
    with Image.open(face) as image:
        buffer = io.BytesIO()
        image.resize((64, 64)).save(buffer, "JPEG")
        thumb = buffer.getvalue()
        # TIFF block: IFD0 (orientation 1) -> IFD1 (JPEG thumbnail offset and length) -> thumb
        ifd0 = struct.pack("<HHHII", 1, 0x0112, 3, 1, 1) + struct.pack("<I", 26)
        ifd1 = struct.pack("<HHHIIHHII", 2, 0x0201, 4, 1, 56, 0x0202, 4, 1, len(thumb))
        tiff = b"II*\0" + struct.pack("<I", 8) + ifd0 + ifd1 + struct.pack("<I", 0) + thumb
        image.save(tmp_path / "thumb.jpg", exif=b"Exif\0\0" + tiff)
    assert thumb in (tmp_path / "thumb.jpg").read_bytes()
    photo = read_photo(tmp_path / "thumb.jpg")
    dest = write_photo(photo, photo.pixels, tmp_path / "out.jpg")
    assert thumb[-200:] not in dest.read_bytes()
    with Image.open(dest) as image:
        assert image.getexif()[0x0112] == 1


@pytest.mark.data
def test_phone_mpo_and_still_gif(tmp_path: Path) -> None:
    """A multi-picture JPEG gives its primary picture as JPEG; a still GIF is written as PNG."""
    with Image.open(shared_data("bad_inputs", "face.png")) as image:
        image.save(tmp_path / "phone.jpg", "MPO", save_all=True, append_images=[image.rotate(90)])
        image.save(tmp_path / "still.gif")
        reference = np.asarray(image, dtype=np.float64)
    mpo = read_photo(tmp_path / "phone.jpg")
    assert (mpo.format, mpo.out_format) == ("MPO", "JPEG")
    assert np.abs(hwc(mpo) - reference).mean() < 2
    gif = read_photo(tmp_path / "still.gif")
    assert (gif.format, gif.mode, gif.out_format) == ("GIF", "P", "PNG")
    assert gif.warnings == ["palette image written as RGB", "GIF is written as PNG"]
    with Image.open(write_photo(gif, gif.pixels, tmp_path / "out" / "still.png")) as image:
        assert (image.format, image.mode) == ("PNG", "RGB")


@pytest.mark.data
def test_refuses_to_overwrite_input(tmp_path: Path) -> None:
    """The source file, by any spelling or hard link, is never written to."""
    source = tmp_path / "photo.jpg"
    source.write_bytes(shared_data("bad_inputs", "face.png").read_bytes())  # PNG content
    os.link(source, tmp_path / "link.png")
    photo = read_photo(source)
    before = sha256(source)
    for dest in (source, tmp_path / "." / "photo.jpg", tmp_path / "link.png"):
        with pytest.raises(ImageError, match="refusing to overwrite the input"):
            write_photo(photo, photo.pixels + 3, dest)
    assert sha256(source) == before
    assert sorted(os.listdir(tmp_path)) == ["link.png", "photo.jpg"]


@pytest.mark.data
def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """A write that fails (destination is a folder) raises ImageError and leaves no temp file."""
    photo = read_photo(shared_data("bad_inputs", "face.png"))
    (tmp_path / "taken").mkdir()
    with pytest.raises(ImageError, match="cannot write"):
        write_photo(photo, photo.pixels, tmp_path / "taken")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(tmp_path / "taken") == []


@pytest.mark.data
def test_too_large_and_bombs(tmp_path: Path) -> None:
    """Size limits are checked from the header, before decoding."""
    large = shared_data("bad_inputs", "large_48mp.jpg")
    with pytest.raises(ImageError, match=r"image too large \(8000x6000 = 48.0 megapixels"):
        read_photo(large, max_pixels=10_000_000)
    bomb = tmp_path / "bomb.png"  # 50 bytes of PNG claiming 30000x30000 pixels
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    with pytest.raises(ImageError, match="decompression bomb"):
        read_photo(bomb)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.data
def test_downscaled_working_copy() -> None:
    """The 48 MP photo is held as uint8 (144 MB) and gives a small float copy for detection."""
    photo = read_photo(shared_data("bad_inputs", "large_48mp.jpg"))
    assert photo.samples.dtype == torch.uint8
    small, scale = photo.downscaled(1000)
    assert small.shape == (3, 750, 1000) and small.dtype == torch.float32
    assert scale == pytest.approx(0.125)
    full_mean = photo.samples[:, ::4, ::4].double().mean(dim=(1, 2))
    assert torch.allclose(small.double().mean(dim=(1, 2)), full_mean, atol=0.5)
    tiny = read_photo(shared_data("bad_inputs", "face.png"))
    same, one = tiny.downscaled(1000)
    assert one == 1.0 and torch.equal(same, tiny.pixels)


@pytest.mark.data
def test_iter_photo_paths_over_bad_inputs() -> None:
    folder = shared_data("bad_inputs")
    found = list(iter_photo_paths([folder]))
    assert [f.relative.as_posix() for f in found] == FILES
    assert all(f.skip_reason is None for f in found)  # no_extension is sniffed as a JPEG


@pytest.mark.data
def test_iter_photo_paths_skips(tmp_path: Path) -> None:
    face = shared_data("bad_inputs", "face.png").read_bytes()
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "z.png").write_bytes(face)
    (tmp_path / "a.png").write_bytes(face)
    (tmp_path / ".hidden" / "c.png").write_bytes(face)
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "notes.txt").write_text("shopping list")
    (tmp_path / "photo_no_ext").write_bytes(face)
    found = list(iter_photo_paths([tmp_path, tmp_path / "a.png", tmp_path / "notes.txt"]))
    assert [(f.relative.as_posix(), f.skip_reason) for f in found] == [
        ("a.png", None), ("b/z.png", None), ("notes.txt", "skipped: not an image"),
        ("photo_no_ext", None)]
    only = list(iter_photo_paths([tmp_path / "notes.txt"]))  # named directly: read, not skipped
    assert [(f.relative, f.skip_reason) for f in only] == [(Path("notes.txt"), None)]
    with pytest.raises(ImageError, match="no such file or folder"):
        list(iter_photo_paths([tmp_path / "missing"]))


def test_unsupported_pixel_format(tmp_path: Path) -> None:
    """Float images are refused before decoding, with the mode named."""
    Image.new("F", (64, 64), 0.5).save(tmp_path / "float.tif")
    with pytest.raises(ImageError, match=r"unsupported pixel format \(F\)"):
        read_photo(tmp_path / "float.tif")


@pytest.mark.data
@pytest.mark.parametrize(("fmt", "mode", "out_mode"), [
    ("TIFF", "CMYK", "RGB"), ("TIFF", "RGBA", "RGBA"), ("TIFF", "L", "L"), ("BMP", "P", "RGB"),
    ("PNG", "LA", "LA"), ("PNG", "1", "L"), ("WEBP", "RGBA", "RGBA")])
def test_other_formats_round_trip(fmt: str, mode: str, out_mode: str, tmp_path: Path) -> None:
    """Modes and formats outside bad_inputs keep format, size and (converted) pixels exactly."""
    with Image.open(shared_data("bad_inputs", "rgba.png")) as image:
        image.convert(mode).save(tmp_path / "in", format=fmt)
    photo = read_photo(tmp_path / "in")
    dest = write_photo(photo, photo.pixels, tmp_path / "out")
    with Image.open(dest) as image:
        assert (image.format, image.mode, image.size) == (fmt, out_mode, (250, 250))
    back = read_photo(dest)
    assert torch.equal(back.samples, photo.samples)
    assert (back.alpha is None) == (photo.alpha is None)

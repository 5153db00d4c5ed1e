"""Reading and writing photos robustly (Pillow).

:func:`read_photo` turns any still photo Pillow can decode into a :class:`Photo`: pixels upright
(EXIF orientation applied) plus what :func:`write_photo` needs to write a faithful output (format,
mode, alpha, EXIF, ICC profile). Everything that goes wrong raises :class:`~cloak.errors.ImageError`
with a one-line message naming the file and the reason. :func:`iter_photo_paths` expands files and
folders into the photos to process.

Decisions (what each awkward input gets):

- detection is by content, never by extension (a JPEG without an extension reads fine);
- empty file, not an image, truncated or corrupt data (Pillow's strict decoder, no recovery),
  animated or multi-page images (GIF, APNG, WebP, TIFF), images smaller than :data:`MIN_SIDE`
  pixels a side, images over ``max_pixels`` and decompression bombs, float and 32-bit integer
  pixels: :class:`ImageError`;
- multi-picture JPEGs from phones (MPO): the primary picture, written back as JPEG;
- CMYK: converted to sRGB through its ICC profile when it has one (Pillow's plain conversion
  otherwise) and written as RGB, with a note in :attr:`Photo.warnings`;
- palette images: expanded to RGB(A) and written as RGB(A) (a note in :attr:`Photo.warnings`);
  GIF and formats Pillow cannot write faithfully are written as PNG (:attr:`Photo.out_format`);
- greyscale ("L", "LA", "1"): kept as one channel and written as greyscale;
- 16-bit greyscale ("I;16"): kept at 16 bits (``samples`` is int32 0..65535) and written as
  16-bit, so unchanged pixels come back bit-exact;
- EXIF: orientation reset to 1 (pixels are stored upright); GPS is dropped on writing unless
  ``keep_location``; the EXIF thumbnail, XMP, IPTC and comments are never copied (they may show the
  unprotected face or a location). ICC profiles and DPI are kept. TIFF tags are not carried
  (Pillow's EXIF of a TIFF is its own layout), only the orientation is applied.

Memory: a photo is held as uint8 in its display orientation, 1 byte per pixel and channel (a
48-megapixel RGB photo: 144 MB); decoding peaks at about 3x that (460 MB measured for 48 MP).
:attr:`Photo.pixels` makes a float32 copy (576 MB for 48 MP): for detection use
:meth:`Photo.downscaled`; :func:`write_photo` also takes uint8 pixels.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, UnidentifiedImageError

from cloak.errors import ImageError
from cloak.fileio import atomic_writer, not_regular

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "FoundFile",
    "ImageError",
    "Photo",
    "iter_photo_paths",
    "read_photo",
    "write_photo",
]

#: Largest image :func:`read_photo` accepts by default, in pixels (108-megapixel phones fit).
#: Pillow's decompression-bomb limit (``2 * Image.MAX_IMAGE_PIXELS``, about 179 MP) still applies.
DEFAULT_MAX_PIXELS = 120_000_000
#: Smallest accepted side in pixels: below it no face can be found or protected.
MIN_SIDE = 32

_EXIF_ORIENTATION = 0x0112
_EXIF_GPS_IFD = 0x8825
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Formats written back as themselves; anything else (GIF, ...) is written as PNG.
_OUT_FORMAT = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "TIFF": "TIFF",
               "BMP": "BMP"}
_MODES_16 = ("I;16", "I;16B", "I;16L", "I;16N")
#: Modes read: 8-bit modes (converted to RGB, RGBA, L or LA) and 16-bit greyscale.
_MODES = ("RGB", "RGBA", "L", "LA", "1", "La", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV",
          *_MODES_16)
_GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as Pillow's RGB -> L
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


@dataclass
class Photo:
    """A decoded still photo in display orientation, with what is needed to write it back.

    Attributes:
        path: the file it was read from.
        format: Pillow's name of the file format ("JPEG", "PNG", "WEBP", "MPO", ...).
        mode: Pillow's mode of the file ("RGB", "L", "RGBA", "CMYK", "I;16", "P", ...).
        samples: the colour or grey samples, upright, one of: uint8 (3, H, W) RGB; uint8 (1, H, W)
            grey; int32 (1, H, W) 16-bit grey in [0, 65535].
        alpha: uint8 (H, W) alpha channel, or None.
        exif: EXIF block (b"Exif\\0\\0..." as Pillow reads it) with orientation 1, or None. It may
            still hold GPS: :func:`write_photo` drops it unless asked to keep it.
        icc_profile: ICC profile bytes of ``samples``, or None (sRGB assumed).
        dpi: resolution from the file, or None.
        warnings: notes on conversions that change what is written (e.g. "CMYK converted to RGB").
    """

    path: Path
    format: str
    mode: str
    samples: torch.Tensor
    alpha: torch.Tensor | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        """Width in display orientation."""
        return self.samples.shape[-1]

    @property
    def height(self) -> int:
        """Height in display orientation."""
        return self.samples.shape[-2]

    @property
    def is_grey(self) -> bool:
        """True when the photo is greyscale and is written back as greyscale."""
        return self.samples.shape[0] == 1

    @property
    def bit_depth(self) -> int:
        """Bits per sample: 8, or 16 for 16-bit greyscale."""
        return 16 if self.samples.dtype == torch.int32 else 8

    @property
    def out_format(self) -> str:
        """The format :func:`write_photo` writes: the input's, or "PNG" when it cannot hold it."""
        return _OUT_FORMAT.get(self.format, "PNG")

    @property
    def pixels(self) -> torch.Tensor:
        """A new float32 RGB copy in [0, 255] (grey repeated on 3 channels; 16-bit divided by 257).

        Shape: (3, H, W). It takes 12 bytes a pixel: prefer :meth:`downscaled` for detection.
        """
        if self.bit_depth == 16:
            return (self.samples.to(torch.float32) / 257.0).expand(3, -1, -1).contiguous()
        rgb = self.samples.expand(3, -1, -1)
        return rgb.to(torch.float32, memory_format=torch.contiguous_format)

    def downscaled(self, max_side: int) -> tuple[torch.Tensor, float]:
        """An RGB working copy whose longer side is at most ``max_side`` (area-averaged).

        Args:
            max_side: longest side of the copy in pixels.

        Returns:
            (image, scale): float32 (3, h, w) RGB in [0, 255], and ``scale = h / H`` (1.0 when the
            photo is already small enough): a point ``p`` in the copy is ``p / scale`` in the photo.
        """
        scale = min(1.0, max_side / max(self.width, self.height))
        if scale == 1.0:
            return self.pixels, 1.0
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        small = Image.fromarray(_to_uint8_hwc(self)).resize(size, Image.Resampling.BOX)
        rgb = torch.from_numpy(np.asarray(small.convert("RGB"), dtype=np.float32).copy())
        return rgb.permute(2, 0, 1).contiguous(), size[1] / self.height


def _to_uint8_hwc(photo: Photo) -> np.ndarray:
    """The samples as a uint8 (H, W) or (H, W, 3) array (16-bit rounded to 8-bit)."""
    samples = photo.samples
    if photo.bit_depth == 16:
        samples = torch.round(samples.to(torch.float32) / 257.0).to(torch.uint8)
    array = samples.permute(1, 2, 0).numpy()
    return array[..., 0] if photo.is_grey else array


def read_photo(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               min_side: int = MIN_SIDE) -> Photo:
    """Read a still photo, upright, with the metadata needed to write it back.

    Args:
        path: the file; its format is found from its content, not its name.
        max_pixels: refuse images with more pixels than this (before decoding them).
        min_side: refuse images whose shorter side is below this.

    Returns:
        the :class:`Photo`.

    Raises:
        ImageError: one line naming the file and why it cannot be used.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a folder, not a photo")
    problem = not_regular(path)
    if problem is not None:
        raise ImageError(path, problem)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, Pillow reads it lazily
    except OSError as err:
        raise ImageError(path, f"cannot open ({err.strerror or err})") from None
    with handle, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageError(path, "empty file")
        try:
            with Image.open(handle) as image:
                return _decode(path, image, max_pixels, min_side)
        except UnidentifiedImageError:
            raise ImageError(path, "not an image (or a format Pillow cannot read)") from None
        except Image.DecompressionBombError as err:
            reason = f"image too large, refused as a decompression bomb ({err})"
            raise ImageError(path, reason) from None
        except MemoryError:
            raise ImageError(path, "not enough memory to decode the image") from None
        except _DECODE_ERRORS as err:
            raise ImageError(path, f"truncated or corrupt image ({err})") from None


def _decode(path: Path, image: Image.Image, max_pixels: int, min_side: int) -> Photo:
    """Check, decode strictly, orient and split ``image`` (opened from ``path``)."""
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(path, f"image too large ({width}x{height} = {width * height / 1e6:.1f} "
                               f"megapixels; the limit is {max_pixels / 1e6:.1f})")
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise ImageError(path, f"animated or multi-page image ({frames} frames): only still "
                               "photos are supported; extract the frames first")
    fmt, mode = image.format or "PNG", image.mode
    if mode not in _MODES:
        raise ImageError(path, f"unsupported pixel format ({mode}); save it as 8-bit RGB or "
                               "greyscale")
    exif = image.getexif()
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if min(width, height) < min_side:
        raise ImageError(path, f"image too small ({width}x{height}): at least {min_side} pixels "
                               "a side are needed")
    image.load()
    notes: list[str] = []
    icc = image.info.get("icc_profile") or None
    dpi = image.info.get("dpi")
    if _EXIF_ORIENTATION in exif:
        exif[_EXIF_ORIENTATION] = 1
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
        if dpi and orientation >= 5:
            dpi = dpi[::-1]

    alpha = None
    if mode in _MODES_16:
        samples = torch.from_numpy(np.asarray(image).astype(np.int32))[None]
    else:
        image, icc = _to_rgb_or_grey(image, icc, notes)
        if image.mode in ("RGBA", "LA"):
            alpha = torch.from_numpy(np.array(image.getchannel("A")))
            image = image.convert(image.mode[:-1])
        array = np.array(image)
        samples = torch.from_numpy(array[..., None] if array.ndim == 2 else array).permute(2, 0, 1)
    if fmt not in _OUT_FORMAT:
        notes.append(f"{fmt} is written as PNG")
    keep_exif = len(exif) and fmt != "TIFF"  # a TIFF's "EXIF" is its own layout: not carried
    return Photo(path=path, format=fmt, mode=mode, samples=samples, alpha=alpha,
                 exif=exif.tobytes() if keep_exif else None, icc_profile=icc,
                 dpi=tuple(float(d) for d in dpi) if dpi else None, warnings=notes)


def _to_rgb_or_grey(image: Image.Image, icc: bytes | None,
                    notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Convert any 8-bit mode to "RGB", "RGBA", "L" or "LA"; returns the image and its ICC."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return image, icc
    if mode == "1":
        return image.convert("L"), icc
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper()), icc
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        notes.append(f"palette image written as {'RGBA' if has_alpha else 'RGB'}")
        return image.convert("RGBA" if has_alpha else "RGB"), icc
    if mode == "CMYK":
        notes.append("CMYK converted to RGB; the output is RGB")
        if icc:
            try:
                source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                rgb = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
                return rgb, srgb.tobytes()
            except ImageCms.PyCMSError:
                notes.append("its ICC profile is unreadable: plain CMYK conversion used")
        return image.convert("RGB"), None
    return image.convert("RGB"), None  # YCbCr, LAB, HSV


def write_photo(photo: Photo, pixels: torch.Tensor, dest: str | Path, *, jpeg_quality: int = 95,
                keep_location: bool = False) -> Path:
    """Write ``pixels`` as a faithful copy of ``photo``: same size, format and mode, atomically.

    Greyscale photos are written as greyscale (ITU-R 601 luma of ``pixels``), 16-bit greyscale at
    16 bits, the alpha channel is re-attached; CMYK and palette photos are written as RGB(A)
    (see :attr:`Photo.out_format` for formats that change). JPEG is written at ``jpeg_quality``
    without chroma subsampling (4:4:4) so the colour of the cloak survives; WebP is written
    lossless. EXIF (orientation 1, without GPS unless ``keep_location``), the ICC profile and DPI
    are kept. Values are rounded with ``np.rint`` and clipped to the sample range. The file is
    written to a temporary file beside ``dest`` and moved over it, so an interrupted run leaves no
    half file.

    Args:
        photo: the photo as read by :func:`read_photo`.
        pixels: (3, H, W) RGB in [0, 255] (float, or uint8), the photo's display size.
        dest: output path (its suffix is not used to choose the format; parents are created).
        jpeg_quality: JPEG quality, 1..100.
        keep_location: keep the GPS block of the EXIF.

    Returns:
        ``dest`` as a Path.

    Raises:
        ImageError: when ``dest`` is the photo's own file (originals are never modified) or cannot
            be written.
        ValueError: when ``pixels`` does not have the photo's shape.
    """
    dest = Path(dest)
    if pixels.shape != (3, photo.height, photo.width):
        raise ValueError(f"pixels must have shape (3, {photo.height}, {photo.width}), "
                         f"got {tuple(pixels.shape)}")
    if dest.resolve() == photo.path.resolve() or (dest.exists() and photo.path.exists()
                                                  and os.path.samefile(dest, photo.path)):
        raise ImageError(dest, "refusing to overwrite the input photo (originals are kept as is)")
    image = _encode_pixels(photo, pixels)
    fmt = photo.out_format
    options: dict[str, object] = {}
    if photo.dpi and fmt != "WEBP":
        options["dpi"] = photo.dpi
    if photo.icc_profile and fmt != "BMP":
        options["icc_profile"] = photo.icc_profile
    if photo.exif and fmt != "BMP":
        options["exif"] = _exif_for_output(photo.exif, keep_location)
    if fmt == "JPEG":
        options.update(quality=jpeg_quality, subsampling=0)
    elif fmt == "WEBP":
        options.update(lossless=True, exact=True)
    elif fmt == "TIFF":
        options["compression"] = "tiff_lzw"
    try:
        _save_atomically(image, dest, fmt, options)
    except OSError as err:
        raise ImageError(dest, f"cannot write ({err.strerror or err})") from None
    return dest


def _encode_pixels(photo: Photo, pixels: torch.Tensor) -> Image.Image:
    """Round ``pixels`` (3, H, W) into a Pillow image in the photo's output mode."""
    values = pixels.detach().to("cpu")
    if photo.is_grey:
        weights = torch.tensor(_GREY_WEIGHTS, dtype=torch.float64)[:, None, None]
        grey = (values.to(torch.float64) * weights).sum(0).numpy()
        if photo.bit_depth == 16:
            image = Image.fromarray(np.clip(np.rint(grey * 257.0), 0, 65535).astype(np.uint16))
        else:
            image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    elif values.dtype == torch.uint8:
        image = Image.fromarray(values.permute(1, 2, 0).contiguous().numpy())
    else:
        rgb = np.clip(np.rint(values.permute(1, 2, 0).numpy()), 0, 255).astype(np.uint8)
        image = Image.fromarray(rgb)
    if photo.alpha is not None:  # never with 16-bit: Pillow reads no 16-bit grey + alpha mode
        image.putalpha(Image.fromarray(photo.alpha.numpy()))
    return image


def _exif_for_output(exif_bytes: bytes, keep_location: bool) -> bytes:
    """The EXIF block to write: GPS removed unless ``keep_location``."""
    exif = Image.Exif()
    exif.load(exif_bytes)
    if not keep_location and _EXIF_GPS_IFD in exif:
        del exif[_EXIF_GPS_IFD]
    return exif.tobytes()


def _save_atomically(image: Image.Image, dest: Path, fmt: str, options: dict[str, object]) -> None:
    """Save to a temporary file beside ``dest``, fsync it, then ``os.replace`` it onto ``dest``."""
    with atomic_writer(dest) as handle:
        image.save(handle, format=fmt, **options)


@dataclass(frozen=True)
class FoundFile:
    """One file found by :func:`iter_photo_paths`.

    Attributes:
        path: the file.
        relative: its path relative to the folder given as input (just its name for a file given
            directly): mirror it under the output folder.
        skip_reason: why it is skipped (print one line and go on; not a failure), or None when it is
            to be read.
    """

    path: Path
    relative: Path
    skip_reason: str | None = None


def iter_photo_paths(inputs: Iterable[str | Path]) -> Iterator[FoundFile]:
    """Expand files and folders into the files to process, in a stable order.

    Files given directly are always returned (reading them reports any problem). Folders are walked
    recursively in sorted order; hidden files and folders (name starting with ".") are left out
    silently. A file in a folder whose extension is an image format's is returned to be read (so a
    broken ``.jpg`` is reported as an error); a file without such an extension is sniffed: returned
    to be read when its content is an image, otherwise returned with ``skip_reason``. An entry that
    is not a regular file (a named pipe, socket or device) is never opened here: it is returned to
    be read, and :func:`read_photo` refuses it in one line. A file reached twice is returned once.

    Args:
        inputs: files and folders.

    Returns:
        an iterator of :class:`FoundFile`.

    Raises:
        ImageError: when an input does not exist (before anything is returned).
    """
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if not path.exists():
            raise ImageError(path, "no such file or folder")
    extensions = {ext.lower() for ext, fmt in Image.registered_extensions().items()
                  if fmt in Image.OPEN}
    seen: set[Path] = set()
    for root in inputs:
        if root.is_dir():
            found = [FoundFile(path, path.relative_to(root),
                               None if not_regular(path) or path.suffix.lower() in extensions
                               or _sniff_image(path) else "skipped: not an image")
                     for path in _walk_visible(root)]
        else:
            found = [FoundFile(root, Path(root.name))]
        for item in found:
            key = item.path.resolve()
            if key not in seen:
                seen.add(key)
                yield item


def _walk_visible(root: Path) -> list[Path]:
    """All non-hidden files under ``root`` (recursive, hidden folders pruned), sorted."""
    files = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [Path(folder, f) for f in filenames if not f.startswith(".")]
    return sorted(files)


def _sniff_image(path: Path) -> bool:
    """True when Pillow recognises ``path``'s content as an image (header only, no decoding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path):
                return True
        except Image.DecompressionBombError:
            return True
        except _DECODE_ERRORS:
            return False

"""Writing the report: each pair read, measured (:mod:`cloak.quality`: L-inf at full
resolution, SSIM and PSNR at full resolution up to
:data:`~cloak.report.figures.QUALITY_MAX_SIDE` pixels a side),
shown as thumbnails and an amplified difference picture, and the page written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import torch

from cloak.check import CheckResult
from cloak.check.photos import photo_files
from cloak.errors import CloakError
from cloak.faces.align import frames_footprint
from cloak.fileio import write_bytes_atomic
from cloak.imageio import Photo, read_photo
from cloak.mask import load_mask
from cloak.photos.options import Reporter, Summary
from cloak.quality import PhotoQuality, linf, psnr, ssim
from cloak.report.checks import check_run, photo_checks
from cloak.report.figures import QUALITY_MAX_SIDE, difference_image, image_uri, protection_plot
from cloak.report.html import PhotoView, SummaryView, render_page
from cloak.report.inputs import (
    NotWritten,
    PhotoChecks,
    PhotoPair,
    pairs_from_summary,
    protection_rates,
)

__all__ = ["REPORT_NAME", "UNKNOWN_EPS_GAIN", "check_report", "protect_report", "write_report"]

#: File name of the report that ``cloak protect --report`` writes into the output folder.
REPORT_NAME = "report.html"
#: Amplification of the difference pictures when the mask's eps is not known.
UNKNOWN_EPS_GAIN = 10.0


def _rgb(photo: Photo) -> torch.Tensor:
    """(3, H, W) RGB in [0, 255]: a uint8 view of an 8-bit photo (no copy), float32 otherwise."""
    return photo.samples.expand(3, -1, -1) if photo.bit_depth == 8 else photo.pixels


def _view(pair: PhotoPair, gain: float, verdicts: dict[str, bool] | None) -> PhotoView:
    """Read and measure one pair (a copy without its original is shown alone); a pair that
    cannot be read or compared says why."""
    try:
        protected = read_photo(pair.protected)
        original = None if pair.original is None else read_photo(pair.original)
    except CloakError as err:
        return PhotoView(pair.name, error=str(err), verdicts=verdicts)
    b = _rgb(protected)
    small_b, _ = protected.downscaled(QUALITY_MAX_SIDE)
    if original is None:
        return PhotoView(pair.name, (image_uri(small_b),), size=(b.shape[2], b.shape[1]),
                         verdicts=verdicts)
    a = _rgb(original)
    if a.shape != b.shape:
        return PhotoView(pair.name, error=f"the protected copy is {b.shape[2]}x{b.shape[1]} px, "
                         f"the original {a.shape[2]}x{a.shape[1]} px: not compared",
                         verdicts=verdicts)
    height, width = a.shape[1:]
    boxes = None if pair.faces is None else tuple(
        (x0 / width, y0 / height, x1 / width, y1 / height)
        for x0, y0, x1, y1 in (frames_footprint(m[None], height, width) for m in pair.faces))
    small_a, _ = original.downscaled(QUALITY_MAX_SIDE)
    quality = PhotoQuality(psnr(small_a, small_b), ssim(small_a, small_b), linf(a, b))
    pictures = (image_uri(small_a), image_uri(small_b),
                image_uri(difference_image(a, b, gain)))
    return PhotoView(pair.name, pictures, boxes, quality, (width, height),
                     (small_a.shape[2], small_a.shape[1]), verdicts=verdicts)


def write_report(pairs: Sequence[PhotoPair], out_path: str | Path,
                 checks: Sequence[PhotoChecks] | None = None, *, eps: float | None = None,
                 not_written: Sequence[NotWritten] = (), title: str = "Protection report",
                 meta: str = "", check_note: str = "",
                 not_written_title: str = "Not written") -> Path:
    """Write a self-contained HTML report of protected photos (opens offline).

    Args:
        pairs: the photos and their protected copies.
        out_path: the HTML file to write (replaced atomically).
        checks: what ``cloak check`` found per photo (matched to :attr:`PhotoPair.name`), or
            None: the report then shows image quality only and says where verdicts come from.
        eps: the mask's L-inf bound in pixel levels: the difference pictures show ``eps`` as
            white; None: they are amplified :data:`UNKNOWN_EPS_GAIN` times.
        not_written: inputs without a copy, listed with their reasons.
        title: the page title.
        meta: one line under the title.
        check_note: one line on the verdicts (what they mean, or why there are none).
        not_written_title: the heading of the ``not_written`` list.

    Returns:
        ``out_path``.

    Raises:
        OSError: the report cannot be written.
    """
    gain = 255.0 / eps if eps else UNKNOWN_EPS_GAIN
    amplification = (f"amplified {gain:.1f} times, so a change of eps = {eps:g} levels (the "
                     "mask's bound) is white." if eps else
                     f"amplified {gain:g} times (a change of 25.5 levels or more is white).")
    verdicts = {row.photo: dict(row.verdicts) for row in checks or ()}
    views = [_view(p, gain, verdicts.get(p.name) if checks is not None else None) for p in pairs]
    rates = protection_rates(checks) if checks else None
    plot = None
    if rates:
        with suppress(ImportError):  # matplotlib is the optional `report` extra; the table stays
            plot = protection_plot(rates)
    page = render_page(SummaryView(title, meta, amplification, rates, plot, check_note), views,
                       not_written, not_written_title)
    out = Path(out_path)
    write_bytes_atomic(out, page.encode("utf-8"))
    return out


def protect_report(summary: Summary, reporter: Reporter | None = None) -> Path:
    """Write :data:`REPORT_NAME` into the output folder of a ``cloak protect`` run: every copy
    of the run present (written now or up to date), its recognizer verdicts against the run's
    originals (:func:`~cloak.report.checks.check_run`; a check that cannot run leaves a
    one-line note), and the inputs not written with their reasons. The difference pictures
    are scaled by the eps of the run's mask file.

    Args:
        summary: the run's summary.
        reporter: receives the check's progress and notices.
    """
    if summary.output is None:
        raise ValueError("the summary has no output folder (not a protect run)")
    pairs, rest = pairs_from_summary(summary)
    eps = None
    if summary.mask_path is not None and summary.mask_path.is_file():
        eps = load_mask(summary.mask_path).eps
    meta = (f"{summary.person}: {len(pairs)} protected, {len(rest)} not written; mask "
            f"{summary.mask_path.name if summary.mask_path else 'none'}"
            + (f" (eps {eps:g} levels)" if eps else ""))
    checks = check_run(pairs, summary.mask_path, reporter)
    return write_report(pairs, summary.output / REPORT_NAME, checks.rows, eps=eps,
                        not_written=rest, title=f"Protection report: {summary.person}",
                        meta=meta, check_note=checks.note)


def check_report(result: CheckResult, references: Sequence[Path], out_path: str | Path) -> Path:
    """Write the report of a ``cloak check`` (``--report``): each protected photo checked, with
    its original beside it when a reference photo has the same file name, its verdicts under
    the check's rule, and the inputs that could not be used.

    Args:
        result: what :func:`~cloak.check.check_photos` returned.
        references: the references it was given (files or folders).
        out_path: the HTML file to write (replaced atomically).

    Raises:
        OSError: the report cannot be written.
        cloak.mask.MaskError: the result's mask file can no longer be read.
    """
    originals: dict[str, Path] = {}
    for found in photo_files(references):
        originals.setdefault(found.path.name, found.path)
    paths = [photo.path for photo in result.photos]
    names = {path: (path.name if [p.name for p in paths].count(path.name) == 1 else str(path))
             for path in paths}
    pairs = [PhotoPair(names[path], originals.get(path.name), path) for path in paths]
    eps = None if result.mask_path is None else load_mask(result.mask_path).eps
    failed = [NotWritten(str(f.path), f"{f.role} photo", f.reason) for f in result.failures]
    meta = (f"{len(paths)} protected photos checked against {result.reference_photos} "
            f"reference photos and {result.distractor_photos} distractor photos; rule "
            f"{result.rule}; mask {result.mask_path or 'unknown'}")
    return write_report(pairs, out_path, photo_checks(result, names), eps=eps,
                        not_written=failed, title="Check report", meta=meta,
                        check_note=" ".join(result.notes), not_written_title="Not checked")

"""The report page: one self-contained HTML file (pictures as ``data:`` URIs, CSS inline, no
script, a Content-Security-Policy that forbids loading anything from elsewhere).

Every name from the file system is escaped (:func:`html.escape`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from string import Template

from cloak.quality import PhotoQuality
from cloak.report.figures import QUALITY_MAX_SIDE
from cloak.report.inputs import NotWritten

__all__ = ["PhotoView", "SummaryView", "render_page"]

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 24px; max-width: 1600px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 8px; word-break: break-all; }
.meta, figcaption, .note { color: #555; font-size: 13px; }
.photo { border: 1px solid #ccc; border-radius: 6px; padding: 12px; margin: 12px 0; }
.row { display: flex; gap: 12px; flex-wrap: wrap; }
figure { margin: 0; flex: 1 1 300px; max-width: 512px; }
.pic { position: relative; line-height: 0; }
.pic img { width: 100%; height: auto; }
.box { position: absolute; border: 2px solid #f0a000; box-sizing: border-box; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 10px; text-align: left; }
.protected { color: #11702e; font-weight: 600; }
.matched, .error { color: #b3261e; font-weight: 600; }
"""

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>$title</title>
<style>$css</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
<h2>Summary</h2>
$summary
<h2>Photos</h2>
<p class="note">Left: the original; middle: the protected copy; right: where they differ,
$amplification The orange box is where the mask can land: the window the face's aligned frame
covers; a faint pattern elsewhere is the JPEG re-encoding, which changes pixels by a level or
two. SSIM (1 = identical) and PSNR (higher = closer) compare the whole photos, at full
resolution up to $quality_side pixels a side; the largest change is counted at full
resolution.</p>
$photos
$not_written
</body>
</html>
""")


@dataclass(frozen=True)
class PhotoView:
    """One photo as the page shows it.

    Attributes:
        name: the photo's name (escaped when rendered).
        pictures: ``data:`` URIs of the original, protected and difference pictures, or empty
            when the pair could not be read.
        boxes: face boxes as fractions of the photo's width and height: (left, top, right,
            bottom) in [0, 1]; None when the faces masked are not known.
        quality: full-resolution quality of the pair, or None.
        size: (width, height) in pixels, or None.
        measured: (width, height) at which SSIM and PSNR were measured (``size``, or a copy
            area-averaged to at most :data:`~cloak.report.figures.QUALITY_MAX_SIDE` pixels a
            side), or None.
        error: why the pair could not be shown, or None.
        verdicts: recognizer -> protected (True) / matched (False), or None without checks.
    """

    name: str
    pictures: tuple[str, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] | None = None
    quality: PhotoQuality | None = None
    size: tuple[int, int] | None = None
    measured: tuple[int, int] | None = None
    error: str | None = None
    verdicts: Mapping[str, bool] | None = None


@dataclass(frozen=True)
class SummaryView:
    """What the page says above the photos.

    Attributes:
        title: the page title (escaped when rendered).
        meta: one line under it (escaped when rendered).
        amplification: how the difference pictures are scaled, one sentence.
        rates: recognizer -> (photos protected, photos checked), or None without checks.
        plot: ``data:`` URI of the protection plot, or None.
        check_note: one line on the verdicts (what they mean, or why there are none), or "".
    """

    title: str
    meta: str
    amplification: str
    rates: Mapping[str, tuple[int, int]] | None = None
    plot: str | None = None
    check_note: str = ""


def _psnr(value: float) -> str:
    return "&infin; dB (unchanged)" if math.isinf(value) else f"{value:.2f} dB"


def _verdicts(verdicts: Mapping[str, bool]) -> str:
    rows = "".join(f'<tr><td>{escape(name)}</td><td class="{"protected" if ok else "matched"}">'
                   f'{"protected" if ok else "matched"}</td></tr>'
                   for name, ok in verdicts.items())
    return f"<table><tr><th>recognizer</th><th>verdict</th></tr>{rows}</table>"


def _picture(uri: str, caption: str, boxes: Sequence[tuple[float, ...]]) -> str:
    spans = "".join(f'<span class="box" style="left:{100 * x0:.2f}%;top:{100 * y0:.2f}%;'
                    f'width:{100 * (x1 - x0):.2f}%;height:{100 * (y1 - y0):.2f}%"></span>'
                    for x0, y0, x1, y1 in boxes)
    return (f'<figure><div class="pic"><img src="{uri}" alt="{escape(caption)}">{spans}</div>'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _photo(view: PhotoView) -> str:
    parts = [f"<h3>{escape(view.name)}</h3>"]
    if view.error is not None:
        parts.append(f'<p class="error">{escape(view.error)}</p>')
    if view.pictures:
        captions = (("original", "protected", "difference (amplified)")
                    if len(view.pictures) == 3 else ("protected (original not known)",))
        parts.append('<div class="row">' + "".join(
            _picture(uri, caption, view.boxes or ())
            for uri, caption in zip(view.pictures, captions, strict=True)) + "</div>")
    if view.quality is not None and view.size is not None:
        faces = "" if view.boxes is None else (
            f"{len(view.boxes)} face{'s' if len(view.boxes) != 1 else ''} masked &middot; ")
        where = ("" if view.measured in (None, view.size) else
                 f" (measured on copies area-averaged to {view.measured[0]}&times;"
                 f"{view.measured[1]} px)")
        parts.append(f'<p>SSIM {view.quality.ssim:.4f} &middot; PSNR {_psnr(view.quality.psnr)}'
                     f"{where} &middot; largest change {view.quality.linf:.0f} levels &middot; "
                     f"{faces}"
                     f"{view.size[0]}&times;{view.size[1]} px</p>")
    if view.verdicts is not None:
        parts.append(_verdicts(view.verdicts))
    return '<article class="photo">' + "\n".join(parts) + "</article>"


def _summary(summary: SummaryView, photos: Sequence[PhotoView]) -> str:
    measured = [p.quality for p in photos if p.quality is not None]
    lines = [f"<p>{len(photos)} protected photo{'s' if len(photos) != 1 else ''}"]
    if measured:
        ssims = [q.ssim for q in measured]
        finite = [q.psnr for q in measured if not math.isinf(q.psnr)]
        lines[0] += (f"; SSIM mean {sum(ssims) / len(ssims):.4f}, lowest {min(ssims):.4f}"
                     + (f"; PSNR mean {sum(finite) / len(finite):.2f} dB" if finite else ""))
    lines[0] += ".</p>"
    if summary.rates:
        if summary.plot is not None:
            lines.append(f'<img src="{summary.plot}" alt="photos protected per recognizer">')
        else:
            lines.append('<p class="note">Install the plot with pip install '
                         "'cloak[report]' (matplotlib).</p>")
        rows = "".join(f"<tr><td>{escape(name)}</td><td>{done} of {total}</td></tr>"
                       for name, (done, total) in summary.rates.items())
        lines.append(f"<table><tr><th>recognizer</th><th>photos protected</th></tr>{rows}"
                     "</table>")
    else:
        lines.append('<p class="note">This report shows image quality only. <code>cloak check'
                     "</code> gives the recognizer verdicts: whether each face recognizer still "
                     "matches the person in the protected photos.</p>")
    if summary.check_note:
        lines.append(f'<p class="note">{escape(summary.check_note)}</p>')
    return "\n".join(lines)


def _not_written(rows: Sequence[NotWritten], title: str) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(r.name)}</td><td>{escape(r.status)}</td>"
                   f"<td>{escape(r.reason)}</td></tr>" for r in rows)
    return (f"<h2>{escape(title)} ({len(rows)})</h2><table><tr><th>input</th><th>status</th>"
            f"<th>reason</th></tr>{body}</table>")


def render_page(summary: SummaryView, photos: Sequence[PhotoView],
                not_written: Sequence[NotWritten] = (),
                not_written_title: str = "Not written") -> str:
    """The whole report page as HTML text; ``not_written`` listed under ``not_written_title``."""
    return _PAGE.substitute(title=escape(summary.title), meta=escape(summary.meta), css=_CSS,
                            summary=_summary(summary, photos),
                            amplification=escape(summary.amplification),
                            quality_side=QUALITY_MAX_SIDE,
                            photos="\n".join(_photo(p) for p in photos),
                            not_written=_not_written(not_written, not_written_title))

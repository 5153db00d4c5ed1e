"""A visual report of protected photos (``cloak protect --report``): one self-contained HTML
file that opens offline.

Per photo: the original and the protected copy side by side, the difference amplified so the
mask's eps is white, the face boxes (where the mask can land), SSIM and PSNR at full
resolution (:mod:`cloak.quality`) and, when given, what each recognizer made of the copy
(:class:`PhotoChecks`, from ``cloak check``) with a plot of protection per recognizer
(matplotlib: ``pip install 'cloak[report]'``). Inputs without a copy are listed with their
reasons. Pictures are embedded as ``data:`` URIs, at most :data:`THUMB_SIDE` pixels a side.

- :mod:`~cloak.report.inputs`: what a report is made of (pairs, checks, files not written);
- :mod:`~cloak.report.figures`: difference picture, thumbnails, plot;
- :mod:`~cloak.report.html`: the page;
- :mod:`~cloak.report.checks`: :func:`photo_checks` (``cloak check``'s result as rows) and
  :func:`check_run` (a run's copies checked against its own originals);
- :mod:`~cloak.report.write`: :func:`write_report`, :func:`protect_report`, :func:`check_report`.

>>> # write_report([PhotoPair("a.jpg", Path("in/a.jpg"), Path("out/a.jpg"))], "report.html",
>>> #              eps=8.0)
"""

from cloak.report.checks import check_run, photo_checks
from cloak.report.figures import THUMB_SIDE, difference_image
from cloak.report.inputs import NotWritten, PhotoChecks, PhotoPair, protection_rates
from cloak.report.write import REPORT_NAME, check_report, protect_report, write_report

__all__ = [
    "REPORT_NAME",
    "THUMB_SIDE",
    "NotWritten",
    "PhotoChecks",
    "PhotoPair",
    "check_report",
    "check_run",
    "difference_image",
    "photo_checks",
    "protect_report",
    "protection_rates",
    "write_report",
]

"""The visual report (:mod:`cloak.report`): a self-contained page of original / protected /
difference pictures with quality figures, recognizer verdicts when given, and ``cloak protect
--report`` on real LFW photos.

Pages are read back with :mod:`html.parser`; every picture must be a ``data:`` URI that decodes
to an image, nothing may point at the network, names from the file system must be escaped.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import lfw_photos, numpy_ssim, shared_data
from PIL import Image

from cloak.check import check_photos
from cloak.cli import main
from cloak.imageio import read_photo
from cloak.report import (
    NotWritten,
    PhotoChecks,
    PhotoPair,
    check_run,
    difference_image,
    write_report,
)

#: A file name that would break the page if it were not escaped.
ODD_NAME = "<b>bold & name.png"
#: The synthetic pair: photo size, and the square (x0, y0, side) where the mask changes pixels.
HEIGHT, WIDTH, SQUARE = 80, 64, (12, 20, 32)


def parse_report(path: Path) -> dict:
    """Read a report page with :mod:`html.parser`.

    Returns:
        ``{"links": every src/href value, "images": the <img> src values, "photos": {h3 text:
        the text of its <article>}, "text": the page's text}``.
    """
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.links, self.images, self.photos, self.text = [], [], {}, []
            self.article: list[str] | None = None
            self.heading: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            values = dict(attrs)
            self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]
            if tag == "img":
                self.images.append(values["src"])
            if tag == "article":
                self.article = []
            if tag == "h3":
                self.heading = []

        def handle_endtag(self, tag):
            if tag == "h3" and self.heading is not None:
                self.name, self.heading = "".join(self.heading), None
            if tag == "article" and self.article is not None:
                self.photos[self.name], self.article = "".join(self.article), None

        def handle_data(self, data):
            self.text.append(data)
            for part in (self.article, self.heading):
                if part is not None:
                    part.append(data)

    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return {"links": page.links, "images": page.images, "photos": page.photos,
            "text": "".join(page.text)}


def data_uri_image(uri: str):
    """Decode a ``data:image/...;base64,`` URI into a loaded PIL image (fails on anything else)."""
    import base64
    import io

    from PIL import Image

    head, _, payload = uri.partition(",")
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head[:40]
    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    image.load()
    return image


def _page_checks(page: dict, html: str) -> None:
    """Every picture decodes, nothing points at the network, no raw tag from a file name."""
    assert page["images"] and all(link.startswith("data:image/") for link in page["links"])
    for uri in page["images"]:
        data_uri_image(uri)
    assert not re.search(r"https?://", html)
    assert "<b>" not in html


def _synthetic_pair(folder: Path, name: str = ODD_NAME) -> tuple[PhotoPair, np.ndarray]:
    """A smooth RGB photo and its copy changed by up to +-6 levels inside :data:`SQUARE` only,
    both lossless PNG; the pair and the (H, W) bool map of the changed square."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    photo = np.stack([40 + 2 * x, 60 + y, 200 - x - y], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(0)
    changed = np.zeros((HEIGHT, WIDTH), bool)
    x0, y0, side = SQUARE
    changed[y0:y0 + side, x0:x0 + side] = True
    noise = rng.integers(-6, 7, size=photo.shape) * changed[..., None]
    protected = (photo + noise).clip(0, 255).astype(np.uint8)
    (folder / "in").mkdir(exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    Image.fromarray(photo).save(folder / "in" / name)
    Image.fromarray(protected).save(folder / "out" / name)
    s = 223 / (side - 1)                       # the frame's 224 pixels over the square
    faces = torch.tensor([[[s, 0.0, -s * x0], [0.0, s, -s * y0]]])
    return PhotoPair(name, folder / "in" / name, folder / "out" / name, faces), changed


def test_difference_image_zero_where_unchanged(tmp_path: Path) -> None:
    pair, changed = _synthetic_pair(tmp_path)
    a, b = read_photo(pair.original).pixels, read_photo(pair.protected).pixels
    diff = difference_image(a, b, scale=255 / 8)
    assert diff.shape == (HEIGHT, WIDTH) and diff.dtype == np.uint8
    assert (diff[~changed] == 0).all()
    largest = (b - a).abs().amax(0).numpy()
    assert (diff[changed] == np.minimum(255, np.round(largest[changed] * 255 / 8))).all()
    assert diff[changed].max() == 191                       # 6 levels of eps 8: 6 * 31.875


def test_report_page(tmp_path: Path) -> None:
    """The page: pictures embedded, the name escaped, quality figures equal to a direct
    computation, the difference picture zero outside the changed square, the face box where
    the frame covers, inputs not written listed with their reasons, the missing verdicts
    pointing at ``cloak check``."""
    pair, changed = _synthetic_pair(tmp_path)
    missing = PhotoPair("gone.png", pair.original, tmp_path / "out" / "gone.png")
    out = write_report([pair, missing], tmp_path / "report.html", eps=8.0,
                       not_written=[NotWritten("in/x<y>.jpg", "failed", "not an image")])
    html = out.read_text(encoding="utf-8")
    page = parse_report(out)
    _page_checks(page, html)
    assert "&lt;b&gt;bold &amp; name.png" in html and "x&lt;y&gt;.jpg" in html
    assert list(page["photos"]) == [ODD_NAME, "gone.png"]
    assert "gone.png: no such file" in page["photos"]["gone.png"]
    assert "in/x<y>.jpg" in page["text"] and "not an image" in page["text"]
    assert "cloak check" in page["text"] and "eps = 8 levels" in page["text"]

    original, protected, diff = (data_uri_image(u) for u in page["images"][:3])
    a = np.asarray(Image.open(pair.original), np.float64)
    b = np.asarray(Image.open(pair.protected), np.float64)
    assert np.array_equal(np.asarray(original.convert("RGB")).shape, a.shape)
    shown = np.asarray(diff)
    assert shown.shape == (HEIGHT, WIDTH) and (shown[~changed] == 0).all()
    assert (shown[changed] > 0).mean() > 0.9

    text = page["photos"][ODD_NAME]
    ssim = float(re.search(r"SSIM ([\d.]+)", text).group(1))
    psnr = float(re.search(r"PSNR ([\d.]+) dB", text).group(1))
    assert ssim == pytest.approx(numpy_ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1)),
                                 abs=5e-5)
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 / np.mean((a - b) ** 2)), abs=5e-3)
    assert ssim < 0.999 and "1 face masked" in text and f"{WIDTH}×{HEIGHT} px" in text

    box = re.search(r'class="box" style="left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;'
                    r'height:([\d.]+)%"', html)
    x0, y0, side = SQUARE
    left, top, width, height = (float(v) / 100 for v in box.groups())
    assert (left * WIDTH, top * HEIGHT) == pytest.approx((x0, y0), abs=1.01)
    assert (width * WIDTH, height * HEIGHT) == pytest.approx((side, side), abs=1.01)


def test_report_renders_checks(tmp_path: Path) -> None:
    """Given verdicts, each photo gets its table and the summary the share per recognizer and
    its plot; without eps the difference is amplified 10 times."""
    pair, _ = _synthetic_pair(tmp_path)
    other, _ = _synthetic_pair(tmp_path, "b.png")
    checks = [PhotoChecks(ODD_NAME, {"facenet": True, "sface": False}),
              PhotoChecks("b.png", {"facenet": True, "sface": True})]
    out = write_report([pair, other], tmp_path / "r.html", checks)
    page = parse_report(out)
    _page_checks(page, out.read_text(encoding="utf-8"))
    assert "facenetprotected" in page["photos"][ODD_NAME].replace(" ", "")
    assert "sfacematched" in page["photos"][ODD_NAME].replace(" ", "")
    assert "sfaceprotected" in page["photos"]["b.png"].replace(" ", "")
    assert "facenet2 of 2" in page["text"] and "sface1 of 2" in page["text"]
    assert "cloak check" not in page["text"] and "amplified 10 times" in page["text"]
    plot = data_uri_image(page["images"][0])                      # above the photos
    assert plot.format == "PNG" and plot.size[0] >= 400


def test_check_that_cannot_run_leaves_a_note(tmp_path: Path) -> None:
    """A run whose check fails (here: its mask file is unreadable) still gets its report, with
    one line saying why there are no verdicts."""
    pair, _ = _synthetic_pair(tmp_path)
    (tmp_path / "x.cloak").write_bytes(b"not a mask")
    checks = check_run([pair], tmp_path / "x.cloak")
    assert checks.rows is None and checks.note.startswith("No recognizer verdicts: the check "
                                                          "failed (") and "x.cloak" in checks.note
    out = write_report([pair], tmp_path / "r.html", checks.rows, check_note=checks.note)
    page = parse_report(out)
    _page_checks(page, out.read_text(encoding="utf-8"))
    assert checks.note in page["text"] and len(page["images"]) == 3
    assert check_run([], None).note == "No recognizer verdicts: no protected photo to check."


@pytest.mark.data
@pytest.mark.usefixtures("one_torch_thread")
def test_check_run_of_unprotected_copies() -> None:
    """A "copy" identical to its original is matched by every recognizer (mask unknown: all
    five); a copy without a face has no verdicts and the note says so."""
    photo, no_face = lfw_photos("Colin_Powell", 1)[0], shared_data("bad_inputs", "no_face.jpg")
    checks = check_run([PhotoPair("a.jpg", photo, photo),
                        PhotoPair("blank.jpg", no_face, no_face)], None)
    assert checks.rows == [PhotoChecks("a.jpg", dict.fromkeys(
        ["dlib-native", "sface", "mobilefacenet", "facenet", "faceres", "faceres-deep",
         "mobileface"], False))]
    assert checks.note.startswith("Verdicts of cloak check, rule far")
    assert checks.note.endswith(" blank.jpg: not checked (no face found).")
    assert checks.note.count("not checked") == 1


def test_thumbnails_are_downscaled(tmp_path: Path) -> None:
    """A large photo is embedded at most 512 pixels a side, the difference picture too."""
    big = np.full((900, 1200, 3), 128, np.uint8)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(big).save(tmp_path / "in" / "big.png")
    big[100:400, 200:500] += 5
    Image.fromarray(big).save(tmp_path / "out" / "big.png")
    out = write_report([PhotoPair("big.png", tmp_path / "in" / "big.png",
                                  tmp_path / "out" / "big.png")], tmp_path / "r.html", eps=8.0)
    sizes = [data_uri_image(u).size for u in parse_report(out)["images"]]
    assert sizes == [(512, 384)] * 3
    diff = np.asarray(data_uri_image(parse_report(out)["images"][2]))
    assert diff[:40].max() == 0 and diff[60:150, 100:190].min() > 0


def _shown_quality(text: str) -> tuple[float, float]:
    """The SSIM and PSNR a photo's article shows."""
    return (float(re.search(r"SSIM ([\d.]+)", text).group(1)),
            float(re.search(r"PSNR ([\d.]+) dB", text).group(1)))


@pytest.mark.data
@pytest.mark.usefixtures("one_torch_thread")
def test_protect_report_on_lfw(colin_photos: Path, tmp_path: Path) -> None:
    """``cloak protect --report`` on 4 LFW photos (one under a name with markup) and a broken
    file: the report shows every copy with quality figures that match a direct computation on
    the files, the verdicts a direct check of the copies against the originals gives, and lists
    the failure; a resumed run reports the copies it kept, a --mask run
    its own."""
    shutil.copy2(lfw_photos("Colin_Powell", 4)[3], colin_photos / "<b>Colin & co.jpg")
    (colin_photos / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    args = ["protect", str(colin_photos), "-o", str(out), "--mode", "fast", "--steps", "1",
            "--surrogates", "dlib-resnet", "--report", "--json", "-q"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 1, first.output                   # the broken file failed
    html = (out / "report.html").read_text(encoding="utf-8")
    page = parse_report(out / "report.html")
    _page_checks(page, html)
    names = ["<b>Colin & co.jpg", *(p.name for p in lfw_photos("Colin_Powell", 3))]
    assert sorted(page["photos"]) == sorted(names)
    assert "broken.jpg" in page["text"] and "not an image" in page["text"]
    for name in names:
        a = np.asarray(Image.open(colin_photos / name).convert("RGB"), np.float64)
        b = np.asarray(Image.open(out / name).convert("RGB"), np.float64)
        ssim, psnr = _shown_quality(page["photos"][name])
        assert ssim == pytest.approx(numpy_ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1)),
                                     abs=5e-5)
        assert psnr == pytest.approx(10 * math.log10(255 ** 2 / np.mean((a - b) ** 2)),
                                     abs=5e-3)
        assert 0.9 < ssim < 1.0 and 30 < psnr < 60 and "1 face masked" in page["photos"][name]
    _verdicts_agree(page, check_photos([out / n for n in names], [colin_photos / n for n in names],
                                       out / "Colin.cloak", rule="far"), names)

    again = runner.invoke(main, args)
    statuses = {Path(f["input"]).name: f["status"] for f in json.loads(again.stdout)["files"]}
    assert [statuses[n] for n in names] == ["up-to-date"] * len(names)
    assert sorted(parse_report(out / "report.html")["photos"]) == sorted(names)

    given = runner.invoke(main, ["protect", str(colin_photos), "-o", str(tmp_path / "given"),
                                 "--mask", str(out / "Colin.cloak"), "--report", "-q"])
    assert given.exit_code == 1, given.output
    page = parse_report(tmp_path / "given" / "report.html")
    assert sorted(page["photos"]) == sorted(names) and "eps = 8 levels" in page["text"]


def _verdicts_agree(page: dict, result, names: list[str]) -> None:
    """The page of a protect run shows, per photo and recognizer, what a direct check of the
    copies against the originals says, the share per recognizer, its plot and what the
    references were."""
    photos = {p.path.name: p for p in result.photos}
    assert sorted(photos) == sorted(names) and result.recognizers == [
        "sface", "mobilefacenet", "facenet", "faceres", "faceres-deep",
        "mobileface"]                                               # dlib-resnet made the mask
    for name, photo in photos.items():
        shown = page["photos"][name].replace(" ", "")
        for recognizer in result.recognizers:
            word = "matched" if photo.matched(recognizer, "far") else "protected"
            assert f"{recognizer}{word}" in shown, (name, recognizer, word)
    for recognizer, entry in result.summary().items():
        assert f"{recognizer}{entry['protected']} of {len(names)}" in page["text"]
    assert "The references are the originals themselves" in page["text"]
    assert "cloak check --distractors" in page["text"]
    assert len(page["images"]) == 3 * len(names) + 1              # the plot above the photos


def test_large_photo_measured_on_downscaled_copies(tmp_path: Path, monkeypatch) -> None:
    """Above QUALITY_MAX_SIDE, SSIM and PSNR compare both photos area-averaged alike (and the
    page says at which size); the largest change is the full-resolution one."""
    import cloak.report.write

    monkeypatch.setattr(cloak.report.write, "QUALITY_MAX_SIDE", 100)
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:240, 0:300]
    photo = np.stack([x // 2, 40 + y // 2, 250 - (x + y) // 3], axis=-1).astype(np.uint8)
    protected = photo.copy()
    protected[60:180, 90:210] = (photo[60:180, 90:210]
                                 + rng.integers(-7, 8, (120, 120, 3))).clip(0, 255)
    for folder, image in (("in", photo), ("out", protected)):
        (tmp_path / folder).mkdir()
        Image.fromarray(image).save(tmp_path / folder / "p.png")
    out = write_report([PhotoPair("p.png", tmp_path / "in" / "p.png", tmp_path / "out" / "p.png")],
                       tmp_path / "r.html", eps=8.0)
    text = parse_report(out)["photos"]["p.png"]
    assert "area-averaged to 100×80 px" in text and "300×240 px" in text
    a, b = (np.asarray(Image.fromarray(i).resize((100, 80), Image.Resampling.BOX), np.float64)
            for i in (photo, protected))
    ssim, psnr = _shown_quality(text)
    assert ssim == pytest.approx(numpy_ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1)),
                                 abs=5e-5)
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 / np.mean((a - b) ** 2)), abs=5e-3)
    largest = np.abs(protected.astype(int) - photo.astype(int)).max()
    assert f"largest change {largest} levels" in text and largest == 7

"""``cloak serve`` end to end in a real headless browser (Chromium driven by Playwright): three
real LFW photos of one person uploaded through the page, protected with ``cloak protect``'s
defaults, checked by the recognizers against the uploads (a verdict line per pair, as
/api/state gives it), shown as before/after pairs and downloaded as a zip whose photos differ
from the inputs by at most eps; a too-large file and a non-image get their messages on the
page.

Set ``CLOAK_SERVE_SCREENSHOT=docs/serve.png`` to also save a screenshot of the page with the
results (the README's picture, in 256 colours).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import lfw_photos
from PIL import Image
from serving import start_serve, stop_serve

pytestmark = pytest.mark.data

#: The mask's L-inf budget (cloak protect's default), in levels of 255.
EPS = 8


@pytest.fixture
def browser():
    """A headless Chromium from the system (never `playwright install`)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium): the browser test "
                    "needs a real browser")
    pytest.importorskip("starlette", reason="the web extra is not installed")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


@pytest.mark.timeout(1800)
def test_page_protects_photos_in_a_browser(browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    photos = []
    for path in lfw_photos("Colin_Powell", 3):  # as lossless PNG: the bound is exact then
        photos.append(tmp_path / f"{path.stem}.png")
        Image.open(path).save(photos[-1])
    big = tmp_path / "huge.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (800, 800, 3), np.uint8)).save(big)
    assert big.stat().st_size > 1024 * 1024
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n" * 100)

    server, url, folder, _ = start_serve("--threads", "1", "--max-file-mb", "1")
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url)
        page.set_input_files("#photos", [str(p) for p in photos])
        expect(page.locator("#photo-count")).to_have_text("3 photos ready.", timeout=60_000)
        page.click("#protect")
        expect(page.locator("#stage")).to_contain_text("Learning the mask", timeout=600_000)
        expect(page.locator("#bar")).to_be_visible()
        expect(page.locator("#stage")).to_contain_text("Checking", timeout=1_200_000)
        expect(page.locator("#download-zip")).to_be_visible(timeout=1_200_000)
        expect(page.locator("#stage")).to_have_text("Done")
        pairs = page.locator(".pair")
        expect(pairs).to_have_count(3)
        page.wait_for_function("() => [...document.querySelectorAll('.pair img')]"
                               ".filter(i => i.complete && i.naturalWidth > 0).length === 6")
        assert pairs.locator(".status").all_inner_texts() == ["Protected (1 face)."] * 3
        assert pairs.locator("h3").all_inner_texts() == [p.name for p in photos]
        state = page.request.get(f"{url.rstrip('/')}/api/state").json()  # the page's session
        lines = pairs.locator(".check-line").all_inner_texts()
        assert lines == [r["check"]["line"] for r in state["results"]]
        assert all(re.fullmatch(r"[012] of 2 recognizers fooled", line) for line in lines), lines
        for pair, result in zip(pairs.all(), state["results"], strict=True):
            listed = pair.locator(".check-recognizers li").all_inner_texts()
            assert listed == [f"{r['name']}: " + ("fooled" if r["fooled"] else
                                                  "still recognizes the person")
                              for r in result["check"]["recognizers"]]
            # the default (balanced) mask is made by facenet, dlib-resnet, faceres and
            # mobilefacenet: sface and mobileface judge (faceres-deep is faceres' family)
            assert [r["name"] for r in result["check"]["recognizers"]] == ["sface", "mobileface"]
            fooled = sum(r["fooled"] for r in result["check"]["recognizers"])
            assert result["check"]["line"].startswith(f"{fooled} of ")
        expect(page.locator("#check-summary")).to_have_text(state["check"]["summary"])
        expect(page.locator("#check-note")).to_contain_text("originals themselves")

        with page.expect_download() as download:
            page.click("#download-zip")
        archive = tmp_path / "protected.zip"
        download.value.save_as(archive)
        with page.expect_download() as download:
            page.click("#download-mask")
        assert download.value.suggested_filename == "person.cloak"

        page.set_input_files("#photos", [str(big), str(text)])
        refused = page.locator("#upload-messages li.refused")
        expect(refused).to_have_count(2, timeout=60_000)
        messages = refused.all_inner_texts()
        assert messages[0].startswith("huge.png: too large: ")
        assert messages[0].endswith("MB, the limit is 1 MB per photo")
        assert messages[1] == ("notes.jpg: not accepted: not an image (or a format Pillow "
                               "cannot read)")
        if shot := os.environ.get("CLOAK_SERVE_SCREENSHOT"):
            page.screenshot(path=shot, full_page=True)
            # 256 colours keep the README's picture under 500 KB
            Image.open(shot).convert("RGB").quantize(256).save(shot, optimize=True)
        page.close()
    finally:
        out, err = stop_serve(server)
    assert not folder.exists(), "Ctrl-C removes the uploads and results"
    assert "Colin" not in out + err and "notes.jpg" not in out + err, "no file names logged"

    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == [p.name for p in photos]
        for photo in photos:
            before = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
            after = np.asarray(Image.open(io.BytesIO(zipped.read(photo.name))).convert("RGB"),
                               dtype=np.int16)
            change = np.abs(after - before)
            assert after.shape == before.shape
            assert change.max() <= EPS + 1, f"{photo.name}: changed by {change.max()} levels"
            assert (change > 0).mean() > 0.05, f"{photo.name}: hardly changed"

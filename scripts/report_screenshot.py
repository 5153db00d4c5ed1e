"""Take the README's picture of the HTML report: ``cloak protect --report`` on 3 LFW photos.

Copies the first 3 LFW photos of ``--person`` into a temporary folder, runs
``cloak protect FOLDER --mode fast --refine 10 --report`` on them, opens the report in headless
Chromium (Debian's ``chromium``, driven by Playwright; ``playwright install`` is not needed) and
saves a full-page screenshot in 256 colours (small enough to commit).

    python scripts/report_screenshot.py --out docs/report.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from evaluation.paths import DEFAULT_LFW


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--width", type=int, default=1100, help="viewport width in pixels")
    args = parser.parse_args()
    browser_path = shutil.which("chromium")
    if browser_path is None:
        sys.exit("chromium not found: install it (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / args.person
        src.mkdir()
        for photo in sorted((args.lfw / "identities" / args.person).glob("*.jpg"))[:3]:
            shutil.copy2(photo, src / photo.name)
        out = Path(tmp) / "out"
        subprocess.run([sys.executable, "-m", "cloak.cli", "protect", str(src), "-o", str(out),
                        "--mode", "fast", "--refine", "10", "--threads", "1", "--report"],
                       check=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto((out / "report.html").as_uri())
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    Image.open(args.out).convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()

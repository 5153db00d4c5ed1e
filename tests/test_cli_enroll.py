"""``cloak enroll`` from photos (:mod:`cloak.cli.enroll`): usage errors (exit 2), then the mask it
writes applied by ``cloak protect --mask``: JSON summaries and exit codes 0/1.

The runs use real models on 3 LFW photos with a 1-step, one-surrogate mask. Enrolment from a
video track is tested in test_video_enroll.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import check_usage_error

from cloak.cli import main
from cloak.mask import load_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.data
@pytest.mark.parametrize("args, message", [
    (["enroll", "Ada", "{photos}", "--protect-attributes", "eyes"], "unknown attributes"),
    (["enroll", "Ada"], "Missing argument"),
    (["enroll", "Ada", "{photos}", "-o", "{mask}"], "exists; use --force"),
])
def test_usage_errors_exit_2(args: list[str], message: str, colin_photos: Path,
                             tmp_path: Path) -> None:
    """Wrong requests stop before any work with exit code 2 and a clear message."""
    check_usage_error(args, message, colin_photos, tmp_path)


@pytest.mark.data
def test_enroll_then_protect_json_and_exit_codes(colin_photos: Path, tmp_path: Path) -> None:
    """enroll -> mask file; protect --mask -> exit 0 and a JSON summary without face data;
    a broken photo added -> one error line, exit 1, the finished photos are skipped."""
    photos = colin_photos
    runner = CliRunner()
    mask_file = tmp_path / "colin.cloak"
    result = runner.invoke(main, ["enroll", "Colin", str(photos), "-o", str(mask_file),
                                  "--steps", "1", "--surrogates", "dlib-resnet", "--json",
                                  "--precision", "bfloat16", "--photos-per-step", "2"])
    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.stdout)
    assert enrolled["mask"]["path"] == str(mask_file) and enrolled["mask"]["training_faces"] == 3
    assert load_mask(mask_file).person == "Colin"
    assert load_mask(mask_file).settings["precision"] == "bfloat16"
    assert load_mask(mask_file).settings["per_step"] == 2

    result = runner.invoke(main, ["protect", str(photos), "--mask", str(mask_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["totals"] == {"files": 3, "protected": 3, "seconds": report["totals"]["seconds"]}
    assert report["mask"]["source"] == "given" and report["mask"]["path"] == str(mask_file)
    out = tmp_path / "Colin_cloaked"
    for entry in report["files"]:
        assert set(entry) == {"input", "status", "faces", "other_faces", "output", "seconds",
                              "reason", "notes"}
        assert Path(entry["output"]).parent == out and Path(entry["output"]).is_file()
    assert "embedding" not in result.stdout and "feature" not in result.stdout

    (photos / "broken.jpg").write_bytes(b"")
    result = runner.invoke(main, ["protect", str(photos), "--mask", str(mask_file), "--quiet"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {photos / 'broken.jpg'}: empty file"]
    assert result.stdout == ""
    result = runner.invoke(main, ["protect", str(photos), "--mask", str(mask_file), "--json"])
    statuses = sorted(f["status"] for f in json.loads(result.stdout)["files"])
    assert statuses == ["failed", "up-to-date", "up-to-date", "up-to-date"]

"""``cloak video`` (:mod:`cloak.cli.video`): usage errors that stop before any model is loaded.

Whole runs are tested in test_video_protect.py (one process) and test_video_engine.py (both
engines); the inputs and outputs of a run in test_video_inputs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import zero_mask_file

from cloak.cli import main


@pytest.mark.parametrize("reference, message", [
    ("Ada", "expected NAME=PHOTOS (a file or folder)"),
    ("=photos", "expected NAME=PHOTOS"),
    ("Ada=", "expected NAME=PHOTOS"),
    ("Ada=no/such/folder", "no/such/folder: no such file or folder"),
])
def test_bad_reference_is_usage_error(reference: str, message: str, tmp_path: Path) -> None:
    mask = zero_mask_file(tmp_path / "ada.cloak", "Ada")
    result = CliRunner().invoke(main, ["video", str(tmp_path), "--mask", str(mask),
                                       "--reference", reference])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path.parent / f"{tmp_path.name}_cloaked").exists()


def test_mask_is_required(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["video", str(tmp_path)])
    assert result.exit_code == 2 and "Missing option '--mask'" in result.output

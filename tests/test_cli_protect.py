"""``cloak protect`` (:mod:`cloak.cli.protect`): usage errors (exit 2) and the mask's learning
options recorded and reused.

The runs use real models on 3 LFW photos with a 1-step, one-surrogate mask; the pipeline itself
is tested in test_protect.py, enroll then protect in test_cli_enroll.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import check_usage_error

from cloak.cli import main
from cloak.mask import load_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.data
@pytest.mark.parametrize("args, message", [
    (["protect"], "Missing argument"),
    (["protect", "no/such/folder"], "does not exist"),
    (["protect", "{photos}", "--jpeg-quality", "0"], "--jpeg-quality"),
    (["protect", "{photos}", "--mode", "ultra"], "--mode"),
    (["protect", "{photos}", "--eps", "0"], "--eps"),
    (["protect", "{photos}", "--steps", "0"], "--steps"),
    (["protect", "{photos}", "--surrogates", "dlib-native"], "cannot be a surrogate"),
    (["protect", "{photos}", "--surrogates", "nope"], "cannot be a surrogate"),
    (["protect", "{photos}", "-o", "{photos}"], "never overwritten"),
    (["protect", "{photos}", "--mask", "{photos}/Colin_Powell_0001.jpg"], "--mask"),
    (["protect", "{photos}", "--mask", "{mask}", "--steps", "3"], "cannot be combined"),
    (["protect", "{photos}", "--unknown"], "No such option"),
    (["protect", "{photos}", "--protect-attributes", "sex,hair"], "unknown attributes"),
    (["protect", "{photos}", "--protect-attributes", ","], "--protect-attributes"),
    (["protect", "{photos}", "--mask", "{mask}", "--protect-attributes", "sex"],
     "cannot be combined"),
    (["protect", "{photos}", "--precision", "float16"], "--precision"),
    (["protect", "{photos}", "--mask", "{mask}", "--precision", "bfloat16"],
     "cannot be combined"),
    (["protect", "{photos}", "--photos-per-step", "-1"], "--photos-per-step"),
    (["protect", "{photos}", "--mask", "{mask}", "--photos-per-step", "0"],
     "--photos-per-step cannot be combined"),
])
def test_usage_errors_exit_2(args: list[str], message: str, colin_photos: Path,
                             tmp_path: Path) -> None:
    """Wrong requests stop before any work with exit code 2 and a clear message."""
    check_usage_error(args, message, colin_photos, tmp_path)


def test_dask_engine_without_distributed_exit_2(monkeypatch, tmp_path: Path) -> None:
    """--engine dask without dask.distributed says what to install, before any work."""
    monkeypatch.setitem(sys.modules, "distributed", None)      # as if not installed
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"not read")
    result = CliRunner().invoke(main, ["protect", str(photos), "--engine", "dask"])
    assert result.exit_code == 2, result.output
    assert "pip install 'cloak[distributed]'" in result.output
    assert not (tmp_path / "photos_cloaked").exists()


@pytest.mark.data
def test_protect_attributes_recorded_and_reused(colin_photos: Path, tmp_path: Path) -> None:
    """--protect-attributes learns with the mode's attribute predictors and records them in the
    mask file; a rerun with the same option reuses the mask, one without it learns anew."""
    runner = CliRunner()
    out = tmp_path / "out"
    base = ["protect", str(colin_photos), "-o", str(out), "--mode", "fast", "--steps", "1",
            "--surrogates", "dlib-resnet", "--json", "-q"]
    first = runner.invoke(main, [*base, "--protect-attributes", "race,sex"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["mask"]["source"] == "learned"
    settings = load_mask(out / "Colin.cloak").settings
    assert settings["protect_attributes"] == "sex,race"
    assert settings["attribute_surrogates"] == (
        "age-gender=sex,faceres-attributes=sex,gear=sex+race")
    again = runner.invoke(main, [*base, "--protect-attributes", "sex,race"])
    assert json.loads(again.stdout)["mask"]["source"] == "reused"
    plain = runner.invoke(main, [*base, "--force"])
    assert json.loads(plain.stdout)["mask"]["source"] == "learned"
    assert "protect_attributes" not in load_mask(out / "Colin.cloak").settings

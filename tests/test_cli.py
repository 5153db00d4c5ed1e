"""The ``cloak`` command line: --help for every command, usage errors (exit 2), exit codes 0/1,
the JSON summary, and lazy imports (``cloak --help`` loads no torch).

The end-to-end protect/enroll runs use real models on 3 LFW photos with a 1-step, one-surrogate
mask; the pipeline itself is tested in test_protect.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO_ROOT, lfw_photos, shared_data

from cloak.cli import MODE_HELP, main
from cloak.mask import load_mask

PERSON = "Colin_Powell"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group``, the group itself first."""
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.mark.parametrize("path", command_paths(main), ids=lambda p: " ".join(p) or "cloak")
def test_help(path: tuple[str, ...]) -> None:
    """Every command and group answers --help with its usage and exit code 0."""
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert " ".join(("main", *path)) in result.output.splitlines()[0]


def test_commands_exist() -> None:
    paths = command_paths(main)
    assert {("protect",), ("enroll",), ("models", "list"), ("models", "fetch")} <= set(paths)


def test_help_loads_no_torch() -> None:
    """`cloak --help` stays fast: importing the CLI imports neither torch nor the pipeline."""
    code = ("import sys, cloak.cli; from click.testing import CliRunner; "
            "CliRunner().invoke(cloak.cli.main, ['protect', '--help']); "
            "sys.exit(sorted({'torch', 'cloak.protect'} & set(sys.modules)) or 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr


def test_mode_help_matches_presets() -> None:
    """--mode's help states each preset's surrogates and steps as cloak.opom.MODES has them."""
    from cloak.opom import MODES

    text = " ".join(MODE_HELP.split())
    for name, mode in MODES.items():
        part = text.split(f"{name}: ", 1)[1].split(" steps", 1)[0]
        assert part.endswith(f"; {mode.config.steps}"), (name, part)
        assert part.split(";")[0].replace("surrogates ", "") == ", ".join(mode.surrogates)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with 3 LFW photos of one person."""
    folder = tmp_path / "Colin"
    folder.mkdir()
    for path in lfw_photos(PERSON, 3):
        shutil.copy2(path, folder / path.name)
    return folder


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
    (["enroll", "Ada", "{photos}", "--protect-attributes", "eyes"], "unknown attributes"),
    (["enroll", "Ada"], "Missing argument"),
    (["enroll", "Ada", "{photos}", "-o", "{mask}"], "exists; use --force"),
])
def test_usage_errors_exit_2(args: list[str], message: str, photos: Path,
                             tmp_path: Path) -> None:
    """Wrong requests stop before any work with exit code 2 and a clear message."""
    from cloak.mask import Mask, save_mask

    mask = tmp_path / "ada.cloak"
    save_mask(Mask(torch.zeros(3, 224, 224), eps=8.0, subspace="center",
                   surrogates=["dlib-resnet"], person="Ada", seed=0), mask)
    argv = [a.format(photos=photos, mask=mask) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "Colin_cloaked").exists()


@pytest.mark.data
def test_enroll_then_protect_json_and_exit_codes(photos: Path, tmp_path: Path) -> None:
    """enroll -> mask file; protect --mask -> exit 0 and a JSON summary without face data;
    a broken photo added -> one error line, exit 1, the finished photos are skipped."""
    runner = CliRunner()
    mask_file = tmp_path / "colin.cloak"
    result = runner.invoke(main, ["enroll", "Colin", str(photos), "-o", str(mask_file),
                                  "--steps", "1", "--surrogates", "dlib-resnet", "--json"])
    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.stdout)
    assert enrolled["mask"]["path"] == str(mask_file) and enrolled["mask"]["training_faces"] == 3
    assert load_mask(mask_file).person == "Colin"

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


@pytest.mark.data
def test_benchmark_command(tmp_path: Path) -> None:
    """`cloak benchmark` runs the LFW protocol (here clean and noise only) and writes its report."""
    lfw = shared_data("lfw")
    out, report = tmp_path / "b.json", tmp_path / "B.md"
    args = ["benchmark", "--lfw", str(lfw), "--limit", "1", "--distractors", "40",
            "--conditions", "clean,noise", "--loo", "one", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--markdown", str(report), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["people"] == ["Alejandro_Toledo"]
    assert data["command"].startswith("cloak benchmark --lfw ")
    assert set(data["summary"]) == {"clean", "noise"}
    assert data["summary"]["clean"]["recognizers"]["sface"]["psr@1"] <= 0.2
    assert "<!-- BEGIN opom -->" in report.read_text()
    assert "PSR@1" in result.output
    bad = CliRunner().invoke(main, ["benchmark", "--conditions", "clean,blur"])
    assert bad.exit_code == 2 and "blur" in bad.output
    both = CliRunner().invoke(main, ["benchmark", "--robustness", "--attributes"])
    assert both.exit_code == 2 and "choose one of --robustness and --attributes" in both.output


@pytest.mark.data
def test_benchmark_attributes(tmp_path: Path) -> None:
    """`cloak benchmark --attributes` measures attribute leakage (here clean vs a paper mask)."""
    out = tmp_path / "a.json"
    args = ["benchmark", "--attributes", "--faces", "4", "--limit", "1", "--distractors", "40",
            "--conditions", "clean,mask-paper", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["command"].startswith("cloak benchmark --attributes")
    assert "mask-paper" in result.output
    assert data["settings"]["lfw_distractors"] == 40, "--distractors reaches the LFW gallery"


@pytest.mark.data
def test_protect_attributes_recorded_and_reused(photos: Path, tmp_path: Path) -> None:
    """--protect-attributes learns with the mode's attribute predictors and records them in the
    mask file; a rerun with the same option reuses the mask, one without it learns anew."""
    runner = CliRunner()
    out = tmp_path / "out"
    base = ["protect", str(photos), "-o", str(out), "--mode", "fast", "--steps", "1",
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

"""``cloak benchmark``: a group with one subcommand per benchmark, each with only its own options
(evaluation/cli.py, loaded by ``cloak`` through the ``cloak.commands`` entry point)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import shared_data

from cloak.cli import main
from evaluation.cli import benchmark

SUBCOMMANDS = ("attributes", "opom", "robustness", "video", "zoo")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_subcommands() -> None:
    assert tuple(sorted(benchmark.commands)) == SUBCOMMANDS


@pytest.mark.parametrize("path", [(), *((name,) for name in SUBCOMMANDS)],
                         ids=lambda p: " ".join(p) or "benchmark")
def test_help(path: tuple[str, ...]) -> None:
    """`cloak benchmark [NAME] --help` answers with its usage and exit code 0."""
    result = CliRunner().invoke(main, ["benchmark", *path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert " ".join(("main", "benchmark", *path)) in result.output.splitlines()[0]


@pytest.mark.parametrize("args, message", [
    (["--limit", "5"], "No such option"),                          # the old flat form
    (["--robustness"], "No such option"),
    (["opom", "--faces", "3"], "No such option"),                   # an attributes option
    (["opom", "--utkface", "x"], "No such option"),
    (["attributes", "--loo", "one"], "No such option"),             # an opom option
    (["attributes", "--person", "Ada"], "No such option"),
    (["robustness", "--conditions", "clean"], "No such option"),
    (["zoo", "--distractors", "5"], "No such option"),
    (["video", "--eot"], "No such option"),
    (["opom", "--conditions", "clean,blur"], "blur"),
    (["attributes", "--conditions", "clean,blur"], "blur"),
    (["opom", "--limit", "0"], "--limit"),
    (["opom", "--loo", "three"], "--loo"),
    (["opom", "--extra-surrogates", "mobileface,sface-x"], "--extra-surrogates"),
    (["nope"], "No such command"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    """An option that does not apply to a benchmark is a usage error (exit code 2)."""
    result = CliRunner().invoke(benchmark, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.data
def test_opom(tmp_path: Path) -> None:
    """`cloak benchmark opom` runs the LFW protocol (here clean and noise only) and writes its
    report."""
    lfw = shared_data("lfw")
    out, report = tmp_path / "b.json", tmp_path / "B.md"
    args = ["benchmark", "opom", "--lfw", str(lfw), "--limit", "1", "--distractors", "40",
            "--conditions", "clean,noise", "--loo", "one", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--markdown", str(report), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["people"] == ["Alejandro_Toledo"]
    assert data["command"].startswith("cloak benchmark opom --lfw ")
    assert "--conditions clean,noise --loo one" in data["command"]
    assert data["command"].endswith(" --quiet")
    assert set(data["summary"]) == {"clean", "noise"}
    assert data["summary"]["clean"]["recognizers"]["sface"]["psr@1"] <= 0.2
    assert "<!-- BEGIN opom -->" in report.read_text()
    assert "PSR@1" in result.output


@pytest.mark.data
def test_opom_extra_surrogates(tmp_path: Path) -> None:
    """`--extra-surrogates` joins the folds that test none of its family, and is recorded."""
    out = tmp_path / "b.json"
    args = ["benchmark", "opom", "--lfw", str(shared_data("lfw")), "--limit", "1",
            "--distractors", "20", "--conditions", "clean", "--extra-surrogates",
            "faceres-deep,mobileface", "--cache", str(tmp_path / "cache"), "--out", str(out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [f["surrogates"] for f in data["folds"]] == [
        ["facenet", "faceres", "mobilefacenet", "faceres-deep", "mobileface"],
        ["dlib-resnet", "sface", "mobileface"]]
    assert "--extra-surrogates faceres-deep,mobileface" in data["command"]
    assert "surrogates dlib-resnet, sface, mobileface -> tested on facenet" in result.output


@pytest.mark.data
def test_attributes(tmp_path: Path) -> None:
    """`cloak benchmark attributes` measures attribute leakage (here clean vs a paper mask)."""
    out = tmp_path / "a.json"
    args = ["benchmark", "attributes", "--faces", "4", "--limit", "1", "--distractors", "40",
            "--conditions", "clean,mask-paper", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["command"].startswith("cloak benchmark attributes")
    assert "mask-paper" in result.output
    assert data["settings"]["lfw_distractors"] == 40, "--distractors reaches the LFW gallery"


@pytest.mark.data
def test_zoo(tmp_path: Path) -> None:
    """`cloak benchmark zoo` measures rank-1 of the named recognizers and writes its report."""
    out, report = tmp_path / "z.json", tmp_path / "Z.md"
    args = ["benchmark", "zoo", "--lfw", str(shared_data("lfw")), "--people", "2",
            "--per-person", "3", "--model", "sface", "--out", str(out), "--markdown",
            str(report), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["command"].startswith("cloak benchmark zoo --lfw ")
    assert data["photos"] == 6 and [m["model"] for m in data["models"]] == ["sface"]
    assert "<!-- BEGIN zoo -->" in report.read_text() and "| sface |" in result.output


def test_missing_lfw_is_a_clean_error(tmp_path: Path) -> None:
    """A data folder without identities stops with a message and exit code 1, no traceback."""
    (tmp_path / "lfw" / "distractors").mkdir(parents=True)
    result = CliRunner().invoke(benchmark, ["opom", "--lfw", str(tmp_path / "lfw"),
                                            "--cache", str(tmp_path / "cache"), "-q"])
    assert result.exit_code == 1, result.output
    assert "identities folder not found" in result.output


@pytest.mark.parametrize("args, message", [
    (["video", "--size", "7x7"], "size must be even and at least 64 pixels"),
    (["video", "--loo", "one", "--tested", "facenet"], "is tested in plan 'one'"),
])
def test_invalid_settings_exit_1(args: list[str], message: str) -> None:
    """Settings the benchmark rejects stop before any work with a message and exit code 1."""
    result = CliRunner().invoke(benchmark, args)
    assert result.exit_code == 1, result.output
    assert message in result.output

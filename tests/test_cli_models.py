"""``cloak models list|fetch`` (:mod:`cloak.cli.models`); the zoo is tested in test_zoo.py."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from attackers import zoo
from cloak.cli import main
from cloak.cli.models import human_size


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_550, 98_200_000, 1_234_000_000,
                                    5_000_000_000_000)] == [
        "0 B", "999 B", "1.0 KB", "1.6 KB", "98.2 MB", "1.2 GB", "5000.0 GB"]


def test_cli_help_and_models_list():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "models" in result.output
    result = runner.invoke(main, ["models", "list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert {r["name"] for r in rows} >= {"facenet", "sface", "mtcnn"}
    assert all({"role", "size_bytes", "licence", "cached"} <= set(r) for r in rows)


def test_models_list_table():
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "role", "access", "size", "cached", "licence", "source"]
    assert any(line.startswith("mtcnn ") for line in lines)
    assert lines[-1] == f"cache: {zoo.cache_dir()}"


def test_cli_fetch_unknown_is_usage_error():
    result = CliRunner().invoke(main, ["models", "fetch", "nope"])
    assert result.exit_code == 2
    assert "unknown model 'nope'" in result.output


@pytest.mark.data
def test_cli_fetch_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOAK_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["models", "fetch", "--quiet", "mtcnn"],
                                env={"CLOAK_CACHE": os.environ["CLOAK_CACHE"]})
    assert result.exit_code == 0, result.output
    assert zoo.is_cached(zoo.get_spec("mtcnn"))

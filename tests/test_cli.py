"""The ``cloak`` group (:mod:`cloak.cli`): --help for every command, lazy imports (``cloak --help``
loads no torch), and the commands other packages register (``cloak benchmark`` from evaluation).

Each command has its own file: test_cli_models.py, test_cli_protect.py, test_cli_enroll.py,
test_cli_video.py; the shared options are in test_cli_options.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT

from cloak.cli import main

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
            "sys.exit(sorted({'torch', 'cloak.photos'} & set(sys.modules)) or 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr

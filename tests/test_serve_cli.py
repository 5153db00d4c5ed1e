"""``cloak serve`` (:mod:`cloak.cli.serve`): the server as a user starts it: the URL printed,
a free port with --port 0, every folder removed on Ctrl-C, nothing logged about requests, a
warning for a non-local --host, and a clear message without the web extra."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT
from serving import start_serve, stop_serve

from cloak.cli import main

pytest.importorskip("starlette", reason="the web extra is not installed: pip install "
                                        "'cloak[web]'")


def test_ctrl_c_removes_every_folder() -> None:
    server, url, folder, _ = start_serve()
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        with urllib.request.urlopen(url, timeout=30) as page:
            assert b"<title>cloak" in page.read()
        assert folder.is_dir() and any(folder.iterdir()), "the visit made a session folder"
    finally:
        out, err = stop_serve(server)
    assert not folder.exists()
    assert server.returncode == 0
    assert err == "cloak serve: stopped; every uploaded photo and result is deleted\n"
    assert out == "", "no access log, nothing else"


def test_non_local_host_warns() -> None:
    server, url, folder, said = start_serve("--host", "0.0.0.0")
    stop_serve(server)
    assert url.startswith("http://0.0.0.0:")
    assert "warning: serving on 0.0.0.0: anyone who can reach this address" in said
    assert not folder.exists()


def test_refuses_a_host_not_given_on_the_command_line() -> None:
    """A non-local address from anywhere but --host (here click's default map) is refused."""
    result = CliRunner().invoke(main, ["serve"], default_map={"serve": {"host": "0.0.0.0"}})
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output


def test_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.output


def test_without_the_web_extra_says_what_to_install() -> None:
    """With starlette missing, `cloak serve` names the extra; `cloak --help` still works."""
    code = ("import sys; sys.modules['starlette'] = None; from click.testing import CliRunner;"
            "from cloak.cli import main; r = CliRunner().invoke(main, ['--help']);"
            "assert r.exit_code == 0 and 'serve' in r.output, r.output;"
            "r = CliRunner().invoke(main, ['serve']); print(r.exit_code, r.output)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 Error: cloak serve needs the web extra (starlette is not "
                                  "installed): pip install 'cloak[web]'")

"""Start and stop ``cloak serve`` in a subprocess for the web page's tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

__all__ = ["start_serve", "stop_serve"]


def start_serve(*args: str) -> tuple[subprocess.Popen, str, Path, str]:
    """``cloak serve --port 0 ARGS`` in a subprocess (text pipes): the process, the page's URL,
    its private folder and what it wrote on stderr before the folder's line."""
    server = subprocess.Popen([sys.executable, "-m", "cloak.cli", "serve", "--port", "0",
                               *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO_ROOT,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    said = ""
    while "private temporary folder: " not in (line := server.stderr.readline()):
        assert line, f"the server ended: {said}"
        said += line
    folder = Path(line.split("private temporary folder: ", 1)[1].strip())
    url = server.stdout.readline().split("open ", 1)[1].split(" ", 1)[0]
    return server, url, folder, said


def stop_serve(server: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C the server of :func:`start_serve`; what it wrote on stdout and stderr since."""
    try:
        server.send_signal(signal.SIGINT)
        return server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()

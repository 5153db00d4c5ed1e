"""The progress manifest in the output folder: what is already written, so a rerun skips it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloak.fileio import not_regular, write_bytes_atomic
from cloak.photos.options import Reporter

__all__ = ["MANIFEST_NAME", "Manifest"]

#: Name of the progress manifest in the output folder.
MANIFEST_NAME = ".cloak-progress.json"
_MANIFEST_FORMAT = "cloak-progress"


class Manifest:
    """``<output>/.cloak-progress.json``: per output, the source's state, mask digest, options.

    Never trusted blindly: a file that is not JSON, not a cloak progress file, or holds entries
    of the wrong shape is noted and its bad entries are dropped (those outputs are redone); an
    entry counts only when its output exists, is not older than its source, and the source's
    size and modification time and the run's key all match.
    """

    def __init__(self, folder: Path, reporter: Reporter) -> None:
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        problem = not_regular(self.path)
        if problem is not None and problem != "no such file":
            reporter.note(f"{self.path}: {problem}; finished outputs are redone")
        elif problem is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("format") != _MANIFEST_FORMAT or not isinstance(data.get("files"),
                                                                            dict):
                    raise ValueError("not a cloak progress file")
                self.entries = {k: v for k, v in data["files"].items() if isinstance(v, dict)}
            except (OSError, ValueError, AttributeError) as err:
                reporter.note(f"{self.path}: unreadable ({err}); finished outputs are redone")

    @staticmethod
    def _source_state(source: Path) -> dict[str, int]:
        stat = source.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def is_done(self, relative: Path, source: Path, dest: Path, key: dict[str, Any]) -> bool:
        """True when ``dest`` exists, is not older than ``source``, and was made with ``key``."""
        entry = self.entries.get(relative.as_posix())
        if entry is None or not dest.is_file():
            return False
        state = self._source_state(source)
        return (entry.get("source") == state and entry.get("key") == key
                and dest.stat().st_mtime_ns >= state["mtime_ns"])

    def record(self, relative: Path, source: Path, key: dict[str, Any]) -> None:
        """Record a finished output and rewrite the manifest atomically."""
        self.entries[relative.as_posix()] = {"source": self._source_state(source), "key": key}
        data = json.dumps({"format": _MANIFEST_FORMAT, "version": 1, "files": self.entries},
                          indent=1, sort_keys=True)
        write_bytes_atomic(self.path, data.encode("utf-8"))


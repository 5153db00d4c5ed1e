"""Shared test helpers: the one way tests reach the real data in ../shared/data.

Tests never copy that data into the repo; when it is absent they skip with a clear reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (expected ../shared/data beside the repo)")
    return path


def lfw_photos(person: str, count: int) -> list[Path]:
    """The first ``count`` LFW photos of ``person`` (e.g. ``"Ariel_Sharon"``)."""
    folder = shared_data("lfw", "identities", person)
    return sorted(folder.glob("*.jpg"))[:count]

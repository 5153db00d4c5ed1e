"""LFW as laid out on disk: the people, the distractors (temporary folders, no photos read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.protocol.lfw import distractor_files, identity_folders


@pytest.fixture
def lfw(tmp_path: Path) -> Path:
    for person in ("Bob", "Ada", "Cy"):
        (tmp_path / "identities" / person).mkdir(parents=True)
    (tmp_path / "distractors").mkdir()
    for name in ("c.jpg", "a.jpg", "b.jpg", "notes.txt"):
        (tmp_path / "distractors" / name).write_bytes(b"")
    return tmp_path


def test_identity_folders(lfw: Path) -> None:
    assert [p.name for p in identity_folders(lfw)] == ["Ada", "Bob", "Cy"]
    assert [p.name for p in identity_folders(lfw, ["Cy", "Ada"])] == ["Ada", "Cy"]
    with pytest.raises(ValueError, match="no identities named Nobody"):
        identity_folders(lfw, ["Ada", "Nobody"])
    with pytest.raises(FileNotFoundError, match="identities folder not found"):
        identity_folders(lfw / "distractors")


def test_distractor_files(lfw: Path) -> None:
    assert [p.name for p in distractor_files(lfw)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [p.name for p in distractor_files(lfw, 2)] == ["a.jpg", "b.jpg"]
    with pytest.raises(FileNotFoundError, match="LFW folder not found"):
        distractor_files(lfw / "identities")

"""Finding the mask beside protected photos (:func:`cloak.check.find_mask`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import zero_mask_file

from cloak.check import find_mask
from cloak.check.photos import photo_files
from cloak.photos import UsageError


def photos(folder: Path, *names: str) -> Path:
    """Files named like photos under ``folder`` (never decoded by the search)."""
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"not decoded")
    return folder


def test_mask_in_the_output_folder(tmp_path: Path) -> None:
    """cloak protect's layout: <out>/<name>.cloak beside the photos and above mirrored ones."""
    out = photos(tmp_path / "Ada_cloaked", "a.jpg", "trip/b.jpg")
    mask = zero_mask_file(out / "Ada.cloak", "Ada")
    assert find_mask([out]) == mask
    assert find_mask([out / "trip" / "b.jpg", out / "a.jpg"]) == mask
    assert [f.path.name for f in photo_files([out])] == ["a.jpg", "b.jpg"]  # mask left out


def test_no_mask_and_not_above_the_input(tmp_path: Path) -> None:
    """Nothing found is None; a mask above the folder given is not looked for."""
    zero_mask_file(tmp_path / "Other.cloak", "Other")
    out = photos(tmp_path / "out", "a.jpg", "sub/b.jpg")
    assert find_mask([out]) is None
    assert find_mask([out / "sub"]) is None


def test_nearest_folder_wins_and_two_masks_are_refused(tmp_path: Path) -> None:
    out = photos(tmp_path / "out", "a.jpg", "sub/b.jpg")
    top = zero_mask_file(out / "Ada.cloak", "Ada")
    near = zero_mask_file(out / "sub" / "Bob.cloak", "Bob")
    assert find_mask([out / "sub"]) == near
    assert find_mask([out / "a.jpg"]) == top
    with pytest.raises(UsageError, match="several mask files.*--mask"):
        find_mask([out])

"""What a ``cloak video`` run reads and where it writes (:mod:`cloak.video.inputs`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from cloak.video.engine import VideoJob
from cloak.video.inputs import (
    default_output,
    find_videos,
    output_path,
    plan_jobs,
    reference_photos,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_find_videos(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for name in ("b.MP4", "a.mkv", "sub/c.webm", "notes.txt", ".hidden.mp4", ".cache/d.mp4"):
        touch(folder / name)
    os.mkfifo(folder / "pipe.mov")
    single = touch(tmp_path / "clip.data")
    found = find_videos([folder, single])
    assert found == [(folder / "a.mkv", Path("a.mkv")), (folder / "b.MP4", Path("b.MP4")),
                     (folder / "pipe.mov", Path("pipe.mov")),
                     (folder / "sub/c.webm", Path("sub/c.webm")),
                     (single, Path("clip.data"))]


def test_default_output(tmp_path: Path) -> None:
    folder, clip = tmp_path / "holiday", touch(tmp_path / "films" / "a.mp4")
    folder.mkdir()
    assert default_output([folder, clip]) == tmp_path / "holiday_cloaked"
    assert default_output([clip, folder]) == tmp_path / "films" / "cloaked"


def test_output_path_keeps_writable_containers() -> None:
    out = Path("out")
    assert output_path(out, Path("sub/a.MOV")) == out / "sub/a.mov"
    assert output_path(out, Path("a.mkv")) == out / "a.mkv"
    assert output_path(out, Path("a.webm")) == out / "a.mp4"
    assert output_path(out, Path("a.avi")) == out / "a.mp4"


def test_plan_jobs_skips_finished_outputs(tmp_path: Path) -> None:
    videos = [(tmp_path / "a.mp4", Path("a.mp4")), (tmp_path / "b.avi", Path("b.avi"))]
    out = tmp_path / "out"
    touch(out / "b.mp4")
    jobs, skipped = plan_jobs(videos, out, force=False)
    assert jobs == [VideoJob(tmp_path / "a.mp4", out / "a.mp4")]
    assert skipped == [VideoJob(tmp_path / "b.avi", out / "b.mp4")]
    jobs, skipped = plan_jobs(videos, out, force=True)
    assert [j.dest for j in jobs] == [out / "a.mp4", out / "b.mp4"] and skipped == []


def test_reference_photos_reports_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "ada"
    folder.mkdir()
    Image.fromarray(np.full((120, 90, 3), 200, np.uint8)).save(folder / "a.png")
    touch(folder / "broken.jpg")
    (folder / "notes.txt").write_text("not a photo")
    errors = []
    photos = reference_photos(folder, errors.append)
    assert [tuple(p.shape) for p in photos] == [(3, 120, 90)]
    assert [str(e) for e in errors] == [f"{folder / 'broken.jpg'}: empty file"]

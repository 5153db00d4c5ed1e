"""Opening and describing videos (:mod:`cloak.video.container`): what probe finds, one-line
errors naming the file, truncation, odd metadata.

Clips are made by ``conftest.make_clip`` (160x120, 48 frames, x264 near-lossless, real audio).
"""

from __future__ import annotations

import pytest
from conftest import CLIP_FPS as FPS
from conftest import CLIP_FRAMES as FRAMES
from conftest import CLIP_HEIGHT as H
from conftest import CLIP_WIDTH as W
from conftest import make_clip, round_trip

from cloak.errors import CloakError
from cloak.video.container import VideoError, probe
from cloak.video.reading import read_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_smoke(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path)
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (W, H, FRAMES)
    assert info.average_rate == FPS and info.codec == "h264"
    assert info.duration == pytest.approx(FRAMES / FPS) and info.start_time == 0
    assert info.rotation == 0 and info.display_size == (W, H) and info.sample_aspect_ratio == 1
    assert info.audio_codecs == ("aac",) and info.has_audio
    assert not info.variable_frame_rate


def test_exception(tmp_path):
    good = tmp_path / "good.mp4"
    make_clip(good, audio=None)
    data = good.read_bytes()
    cases = {
        "text.mp4": (b"this is not a video\n" * 50, "not a video or corrupt"),
        "empty.mp4": (b"", "empty file"),
        "truncated.mp4": (data[: len(data) // 2], "not a video or corrupt"),
        "missing.mp4": (None, "no such file"),
    }
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        for action in (probe, lambda p: list(read_frames(p))):
            with pytest.raises(VideoError) as caught:
                action(path)
            assert str(caught.value).startswith(f"{path}: {reason}")
            assert isinstance(caught.value, CloakError) and "\n" not in str(caught.value)


def test_metadata_that_is_not_utf8(tmp_path):
    """A container tag that is not UTF-8 (here the major brand, as byte damage or an old camera
    leaves it) is read with replacement characters, not a traceback (found by hypothesis)."""
    clip = tmp_path / "clip.mp4"
    make_clip(clip, audio=None)
    data = bytearray(clip.read_bytes())
    assert data[8:12] == b"isom"
    data[8] ^= 0x80
    clip.write_bytes(bytes(data))
    assert probe(clip).frame_count == FRAMES
    assert sum(len(batch.frames) for batch in read_frames(clip)) == FRAMES


def test_truncated_after_index(tmp_path):
    src, fast = tmp_path / "clip.mp4", tmp_path / "fast.mp4"
    make_clip(src, audio=None)
    round_trip(src, fast)  # the writer puts the index first (faststart)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size * 6 // 10])
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated: \d+ of 48 frames present"):
        probe(cut)
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated"):
        for _ in read_frames(cut):
            pass

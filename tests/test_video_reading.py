"""Decoding a video (:mod:`cloak.video.reading`): batches, timestamps, pixels, rotation.

Clips are made by ``conftest.make_clip`` (160x120, 48 frames, x264 near-lossless, real audio).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CLIP_FPS as FPS
from conftest import CLIP_HEIGHT as H
from conftest import CLIP_WIDTH as W
from conftest import MAX_MEAN_ERROR, decode_all, make_clip, round_trip

from cloak.video.colour import window_rgb
from cloak.video.container import probe
from cloak.video.reading import FrameBatch, iter_frames, read_frames, to_display, to_stored

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cardinality(tmp_path):
    path = tmp_path / "clip.mp4"
    images = make_clip(path, audio=None)
    batches = list(read_frames(path, batch_size=20, threads=1))
    assert [len(b.pts) for b in batches] == [20, 20, 8]
    assert [b.start_index for b in batches] == [0, 20, 40]
    batch = batches[1]
    assert isinstance(batch, FrameBatch)
    assert batch.frames.shape == (20, 3, H, W) and batch.frames.dtype == torch.float32
    assert batch.frames.is_contiguous()
    assert 0 <= batch.frames.min() and batch.frames.max() <= 255
    assert torch.allclose(batch.times, torch.arange(20, 40, dtype=torch.float64) / FPS)
    # the decoded pixels are the pattern the clip was made from (CRF 10 source)
    made = torch.from_numpy(images[25]).permute(2, 0, 1).float()
    assert (batch.frames[5] - made).abs().mean() < MAX_MEAN_ERROR


def test_rotation(tmp_path):
    src, dest = tmp_path / "portrait.mp4", tmp_path / "out.mp4"
    make_clip(src, rotation_ccw=-90, audio=None, marker=True)  # a phone's portrait clip
    info = round_trip(src, dest)
    assert info.rotation == 90 and info.display_size == (H, W)
    assert probe(dest).rotation == 90
    frames, _ = decode_all(dest)
    assert frames.shape[-2:] == (H, W)  # delivered as stored
    shown = to_display(frames[:1], info.rotation)
    assert shown.shape[-2:] == (W, H)
    # turned a quarter clockwise, the stored top-left marker shows at the top-right
    assert shown[0, :, :25, -15:].mean() > 240 and shown[0, :, :25, :15].mean() < 200
    assert torch.equal(to_stored(shown, info.rotation), frames[:1])
    with pytest.raises(ValueError, match="rotation"):
        to_display(frames, 45)


def test_yuv420p_frames_unconverted(tmp_path):
    """keep_yuv420p hands 8-bit 4:2:0 frames over as planes; converted, they are the RGB frames;
    other pixel formats still come as RGB."""
    path, other = tmp_path / "clip.mp4", tmp_path / "444.mkv"
    make_clip(path, audio=None, bt709=True)
    info = probe(path)
    rgb = list(iter_frames(path, threads=1))
    planar = list(iter_frames(path, threads=1, keep_yuv420p=True,
                              select=lambda i: i % 4 == 0))
    assert [f.pts for f in planar] == [f.pts for f in rgb]
    kept = [f for f in planar if f.image is not None]
    assert len(kept) == 13 and all(f.planar for f in kept)          # 0, 4, ..., 44 and the last
    for frame in kept:
        assert frame.image.shape == (H * 3 // 2, W) and frame.image.dtype == np.uint8
        shown = window_rgb(frame.image, (0, 0, W, H), info.color)
        assert np.array_equal(shown, rgb[frame.index].image)
    make_clip(other, audio=None, codec="ffv1", pix_fmt="yuv444p")
    first = next(iter_frames(other, threads=1, keep_yuv420p=True))
    assert not first.planar and first.image.shape == (H, W, 3)

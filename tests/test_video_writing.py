"""Re-encoding a video (:mod:`cloak.video.writing`): faithful round trips, clear refusals, no
debris.

Clips are made by ``conftest.make_clip`` (160x120, 48 frames, x264 near-lossless, real audio).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import CLIP_FPS as FPS
from conftest import CLIP_FRAMES as FRAMES
from conftest import CLIP_HEIGHT as H
from conftest import CLIP_VFR_GAPS as VFR_GAPS
from conftest import CLIP_WIDTH as W
from conftest import MAX_MEAN_ERROR, audio_packets, decode_all, make_clip, round_trip

from cloak.video.container import VideoError, probe
from cloak.video.reading import iter_frames, read_frames
from cloak.video.writing import VideoWriter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_round_trip(tmp_path):
    src, dest = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    images = make_clip(src, bt709=True, pixel_aspect=Fraction(8, 9))  # anamorphic, like DV
    info = round_trip(src, dest)
    out = probe(dest)
    assert out.sample_aspect_ratio == info.sample_aspect_ratio == Fraction(8, 9)
    assert (out.width, out.height, out.frame_count) == (W, H, FRAMES)
    assert out.average_rate == info.average_rate == FPS
    assert abs(out.duration - info.duration) < 1 / FPS
    assert out.rotation == 0 and out.codec == "h264"
    assert out.color == info.color and info.color.space == 1  # BT.709 tags kept
    assert out.audio_codecs == ("aac",)
    assert audio_packets(dest) == audio_packets(src)  # remuxed: same bytes, same times
    before, times_before = decode_all(src)
    after, times_after = decode_all(dest)
    assert torch.equal(times_after, times_before)
    made = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    assert (before - made).abs().mean() < MAX_MEAN_ERROR  # decoded with the BT.709 matrix
    error = (after - before).abs().mean().item()
    assert error < MAX_MEAN_ERROR, f"mean abs error {error:.2f} after CRF 18"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_variable_frame_rate(tmp_path):
    src, dest = tmp_path / "vfr.mp4", tmp_path / "out.mkv"
    make_clip(src, vfr=True, audio="libopus")
    info = round_trip(src, dest)
    assert info.variable_frame_rate and info.audio_codecs == ("opus",)
    gaps = [VFR_GAPS[i % len(VFR_GAPS)] for i in range(FRAMES - 1)]
    expected = torch.tensor([0.0, *np.cumsum(gaps)], dtype=torch.float64) / 1000
    _, times_before = decode_all(src)
    after, times_after = decode_all(dest)
    assert torch.allclose(times_before, expected, atol=1e-9)
    assert torch.allclose(times_after, expected, atol=1e-9)
    out = probe(dest)
    assert out.variable_frame_rate and out.frame_count == FRAMES
    assert abs(out.duration - info.duration) < max(VFR_GAPS) / 1000
    before, after = audio_packets(src), audio_packets(dest)
    assert [data for data, _ in after] == [data for data, _ in before]
    # Matroska keeps times in milliseconds: Opus packets start every 20 ms from -6.5 ms
    assert max(abs(a - b) for (_, a), (_, b) in zip(after, before, strict=True)) <= 0.0005


def test_odd_size(tmp_path):
    src, dest = tmp_path / "odd.mkv", tmp_path / "out.mp4"
    make_clip(src, width=161, height=121, audio=None, codec="ffv1", pix_fmt="yuv444p")
    info = round_trip(src, dest)
    assert (info.width, info.height) == (161, 121)
    out = probe(dest)
    assert (out.width, out.height, out.frame_count) == (162, 122, FRAMES)
    before, _ = decode_all(src)
    after, _ = decode_all(dest)
    assert (after[..., :121, :161] - before).abs().mean() < MAX_MEAN_ERROR
    assert (after[..., 121, :161] - before[..., 120, :]).abs().mean() < 2 * MAX_MEAN_ERROR


def test_writer_failure_leaves_nothing(tmp_path):
    src = tmp_path / "clip.mp4"
    make_clip(src)
    info = probe(src)
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"previous output")
    with pytest.raises(RuntimeError, match="processing failed"):
        with VideoWriter(dest, info, threads=1) as out:
            batch = next(read_frames(src, batch_size=4))
            out.write(batch.frames, batch.pts)
            raise RuntimeError("processing failed")
    assert dest.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]
    with pytest.raises(VideoError, match="no video frames were written"):
        with VideoWriter(tmp_path / "empty.mp4", info, threads=1):
            pass
    with pytest.raises(ValueError, match="timestamps must increase"):
        with VideoWriter(tmp_path / "bad.mp4", info, threads=1) as out:
            out.write(batch.frames, batch.pts.flip(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]


def test_writer_refusals(tmp_path):
    src = tmp_path / "clip.mov"
    make_clip(src, audio="pcm_mulaw")  # telephone audio: MOV holds it, MP4 cannot
    info = probe(src)
    assert info.audio_codecs == ("pcm_mulaw",)
    with pytest.raises(VideoError, match="output would overwrite the input"):
        VideoWriter(tmp_path / "." / "clip.mov", info)
    with pytest.raises(VideoError, match=r"unsupported output container '\.avi'"):
        VideoWriter(tmp_path / "out.avi", info)
    with pytest.raises(VideoError, match=r"out\.mp4: mp4 cannot hold pcm_mulaw audio"):
        VideoWriter(tmp_path / "out.mp4", info)
    with pytest.raises(VideoError, match=r"clip\.mov/out\.mp4: cannot write \(file exists\)"):
        VideoWriter(src / "out.mp4", info)  # a file where the folder should be
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mov"]
    round_trip(src, tmp_path / "out.mov")
    assert audio_packets(tmp_path / "out.mov") == audio_packets(src)


def test_planes_are_encoded_as_they_are(tmp_path):
    """Decoded yuv420p planes written back need no colour conversion: the output decodes close
    to the source (x264 is the only loss), and wrong shapes are refused."""
    src, dest = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    make_clip(src, audio=None, bt709=True)
    info = probe(src)
    frames = list(iter_frames(src, threads=1, keep_yuv420p=True))
    assert all(f.planar for f in frames)
    with VideoWriter(dest, info, threads=1) as writer:
        writer.write_planes([f.image for f in frames], [f.pts for f in frames])
        with pytest.raises(ValueError, match="planes must be uint8"):
            writer.write_planes([frames[0].image[:-2]], [10**6])
    assert probe(dest).color == info.color
    before = np.stack([f.image for f in frames]).astype(float)
    after = np.stack([f.image for f in iter_frames(dest, threads=1, keep_yuv420p=True)])
    assert np.abs(after - before).mean() < MAX_MEAN_ERROR

"""Video I/O: probe, batched decoding, faithful re-encoding, clear errors.

Clips are generated here with PyAV itself (x264 at a near-lossless CRF, real AAC and Opus encoders),
small enough (160x120, 48 frames) that the whole file runs in a few seconds on one core.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from cloak.errors import CloakError
from cloak.video.io import (
    FrameBatch,
    VideoError,
    VideoInfo,
    VideoWriter,
    probe,
    read_frames,
    to_display,
    to_stored,
)

W, H, FPS, FRAMES = 160, 120, 25, 48
#: Irregular frame gaps (ms) of the VFR clip, repeated: 40, 80, 40, 120, ...
VFR_GAPS = (40, 80, 40, 120)
#: Mean absolute difference (levels of 255) allowed between decoded frames and the pattern they
#: were made from, and across a CRF-18 round trip. Measured: decoding about 1.55 (4:2:0 chroma),
#: round trip 1.7-1.9 (a 720p clip: 1.4); reading a BT.709 clip with BT.601 coefficients: 6.8,
#: writing it with them: 6.3.
MAX_MEAN_ERROR = 2.5


def pattern(i: int, width: int = W, height: int = H, marker: bool = False) -> np.ndarray:
    """Frame ``i`` of a smooth moving colour pattern, (height, width, 3) uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 90 * np.sin(2 * math.pi * (x / width + i / FRAMES))
    g = 128 + 90 * np.cos(2 * math.pi * y / height)
    b = 128 + 60 * np.sin(2 * math.pi * (x + y) / (width + height) + i / 8)
    image = np.stack([r, g, b], axis=-1).round().astype(np.uint8)
    if marker:  # a white block in the stored top-left corner, to see where rotation takes it
        image[:20, :30] = 255
    return image


def make_clip(path: Path, *, width: int = W, height: int = H, audio: str | None = "aac",
              rotation_ccw: int = 0, vfr: bool = False, bt709: bool = False,
              codec: str = "libx264", pix_fmt: str = "yuv420p", marker: bool = False,
              pixel_aspect: Fraction | None = None) -> list[np.ndarray]:
    """Write a test clip; return the RGB frames it was made from."""
    images = [pattern(i, width, height, marker) for i in range(FRAMES)]
    time_base = Fraction(1, 1000) if vfr else Fraction(1, FPS)
    with av.open(str(path), "w") as out:
        options = {"crf": "10", "preset": "ultrafast"} if codec == "libx264" else {}
        video = out.add_stream(codec, rate=FPS, options=options)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = time_base
        video.codec_context.thread_count = 1
        if bt709:
            ctx = video.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1
            ctx.color_range = 1
        if rotation_ccw:
            video.set_display_rotation(rotation_ccw)
        if pixel_aspect:
            video.codec_context.sample_aspect_ratio = pixel_aspect
        sound = out.add_stream(audio, rate=48000, layout="mono") if audio else None
        stamp = 0
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace="itu709" if bt709 else None,
                                   dst_color_range=1 if bt709 else None)
            frame.pts, frame.time_base = stamp, time_base
            stamp += VFR_GAPS[i % len(VFR_GAPS)] if vfr else 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            rate, size = 48000, sound.codec_context.frame_size or 1024
            for start in range(0, rate * FRAMES // FPS, size):
                t = np.arange(start, start + size) / rate
                tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return images


def audio_packets(path: Path) -> list[tuple[bytes, Fraction]]:
    """Payload and start time (seconds) of every audio packet, in file order."""
    with av.open(str(path)) as container:
        return [(bytes(p), p.pts * p.time_base) for p in container.demux(audio=0) if p.size]


def decode_all(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames (N, 3, H, W) and their times (N,) in seconds."""
    batches = list(read_frames(path, batch_size=16, threads=1))
    return torch.cat([b.frames for b in batches]), torch.cat([b.times for b in batches])


def round_trip(src: Path, dest: Path, **kwargs) -> VideoInfo:
    info = probe(src)
    with VideoWriter(dest, info, preset="veryfast", threads=1, **kwargs) as out:
        for batch in read_frames(src, batch_size=20, threads=1):
            out.write(batch.frames, batch.pts)
    return info


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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

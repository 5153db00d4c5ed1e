"""Decoding a video's frames: one by one (:func:`iter_frames`) or in batches (:func:`read_frames`),
and turning them upright (:func:`to_display`) and back (:func:`to_stored`).

- Orientation: frames are delivered as stored. :attr:`~cloak.video.container.VideoInfo.rotation`
  says how a player turns them for display. Detection needs upright faces: turn a batch with
  :func:`to_display`, process it, turn the result back with :func:`to_stored` (both are exact
  quarter turns) and write it; the writer keeps the display matrix, so the output shows the way
  the input did.
- Colour: decoding converts to RGB with the source's YUV matrix and range. The pipeline is
  8-bit: 10-bit and HDR sources come back as 8-bit.
- Speed: :func:`iter_frames` converts to RGB only the frames asked for (a detection pass needs
  every fourth), as 8-bit arrays, or hands 8-bit 4:2:0 frames over unconverted (a render pass
  converts only the windows it pastes into, :mod:`cloak.video.colour`). FFmpeg runs its own
  threads with the GIL released, so decoding overlaps with work in Python threads.

>>> # for batch in read_frames("clip.mp4"):
>>> #     upright = to_display(batch.frames, info.rotation)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from cloak.video.container import (
    VideoError,
    check_complete,
    fraction,
    open_input,
    reason,
    video_stream,
)

__all__ = ["DecodedFrame", "FrameBatch", "iter_frames", "read_frames", "to_display", "to_stored"]


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive decoded frames in presentation order.

    Attributes:
        frames: (N, 3, H, W) float32 RGB in [0, 255], as stored (see :func:`to_display`).
        pts: (N,) int64 presentation timestamps in ``time_base`` ticks.
        time_base: seconds per tick.
        start_index: index of the first frame of the batch in the video.
    """

    frames: torch.Tensor
    pts: torch.Tensor
    time_base: Fraction
    start_index: int

    @property
    def times(self) -> torch.Tensor:
        """(N,) float64 presentation times in seconds."""
        return self.pts.to(torch.float64) * float(self.time_base)


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded video frame.

    Attributes:
        index: position of the frame in the video, 0-based, in presentation order.
        pts: presentation timestamp in the stream's time base ticks.
        image: (H, W, 3) uint8 RGB as stored (see :func:`to_display`), or None when the frame
            was not asked for; with ``planar``, the frame's (H * 3/2, W) uint8 yuv420p planes
            (:mod:`cloak.video.colour`).
        last: it is the last frame of the video.
        planar: ``image`` holds yuv420p planes, not RGB.
    """

    index: int
    pts: int
    image: np.ndarray | None
    last: bool
    planar: bool = False


def iter_frames(path: str | Path, *, select: Callable[[int], bool] | None = None,
                threads: int = 0, keep_yuv420p: bool = False) -> Iterator[DecodedFrame]:
    """Decode the video frames of a file one by one, converting only the frames asked for.

    Every frame is decoded (the codec needs them), but only the frames that ``select`` picks,
    and the last frame, are converted to RGB: the cheap way to look at every N-th frame. A frame
    is delivered when the next one is decoded (so that ``last`` is known).

    Args:
        path: the video file.
        select: called with each frame index; None converts every frame.
        threads: decoder threads; 0 lets FFmpeg choose.
        keep_yuv420p: frames stored as 8-bit 4:2:0 YUV of even width and height come as their
            planes, unconverted (``planar``); other frames as RGB.

    Yields:
        :class:`DecodedFrame`, images (H, W, 3) uint8 RGB (or planes, see ``keep_yuv420p``).

    Raises:
        VideoError: the file cannot be opened or decoded, a frame is damaged (the decoder had
            to conceal errors), has no timestamp or changes size mid-stream, or the file ends
            before the frames its header announces.
    """
    path = Path(path)

    def emit(frame: av.VideoFrame, index: int, last: bool) -> DecodedFrame:
        if not (last or select is None or select(index)):
            return DecodedFrame(index, frame.pts, None, last)
        if keep_yuv420p and frame.format.name == "yuv420p" and not (
                frame.width % 2 or frame.height % 2):
            return DecodedFrame(index, frame.pts, frame.to_ndarray(), last, planar=True)
        return DecodedFrame(index, frame.pts, frame.to_ndarray(format="rgb24"), last)

    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.codec_context.thread_count = threads
        stream.codec_context.thread_type = "AUTO"
        held: av.VideoFrame | None = None
        count = 0
        demuxed = 0
        size: tuple[int, int] | None = None
        try:
            for packet in container.demux(stream):
                demuxed += packet.size > 0
                for frame in stream.decode(packet):
                    if frame.pts is None:
                        raise VideoError(path, f"frame {count} has no timestamp")
                    if frame.is_corrupt:  # the decoder concealed damage: faces may be missed
                        raise VideoError(path, f"corrupt video data (frame {count} is damaged)")
                    if size is None:
                        size = (frame.width, frame.height)
                    elif size != (frame.width, frame.height):
                        raise VideoError(path, f"frame size changes mid-stream ({size[0]}x"
                                               f"{size[1]} to {frame.width}x{frame.height})")
                    if held is not None:
                        yield emit(held, count - 1, False)
                    held = frame
                    count += 1
        except av.FFmpegError as err:
            raise VideoError(path, f"cannot decode frame {count} ({reason(err)})") from None
        check_complete(path, stream, demuxed)
        if held is None:
            raise VideoError(path, "no decodable video frame")
        yield emit(held, count - 1, True)


def read_frames(path: str | Path, batch_size: int = 8, *, threads: int = 0
                ) -> Iterator[FrameBatch]:
    """Decode the video frames of a file in batches, in presentation order.

    Frames are delivered as stored; :attr:`~cloak.video.container.VideoInfo.rotation` and
    :func:`to_display` turn them upright. Memory: a batch takes ``batch_size * 12 * W * H``
    bytes (1080p, 8 frames: 200 MB).

    Args:
        path: the video file.
        batch_size: frames per batch (the last batch may be shorter).
        threads: decoder threads; 0 lets FFmpeg choose.

    Yields:
        :class:`FrameBatch` with frames (N, 3, H, W) float32 RGB in [0, 255].

    Raises:
        VideoError: as :func:`iter_frames`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    path = Path(path)
    with open_input(path) as container:
        time_base = fraction(video_stream(container, path).time_base)
    images: list[np.ndarray] = []
    stamps: list[int] = []
    for frame in iter_frames(path, threads=threads):
        images.append(frame.image)
        stamps.append(frame.pts)
        if len(images) == batch_size or frame.last:
            yield _batch(images, stamps, time_base, frame.index + 1 - len(images))
            images, stamps = [], []


def to_display(frames: torch.Tensor, rotation: int) -> torch.Tensor:
    """Turn stored frames the way a player shows them (exact: no resampling).

    Args:
        frames: (..., H, W) stored frames.
        rotation: :attr:`~cloak.video.container.VideoInfo.rotation`, degrees clockwise (0, 90,
            180, 270).

    Returns:
        (..., H, W) for 0 and 180, (..., W, H) for 90 and 270.

    >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> to_display(x, 90)[0, 0]
    tensor([[3., 0.],
            [4., 1.],
            [5., 2.]])
    """
    return torch.rot90(frames, -_quarter_turns(rotation), dims=(-2, -1))


def to_stored(frames: torch.Tensor, rotation: int) -> torch.Tensor:
    """Undo :func:`to_display`: turn display-oriented frames back to the stored orientation.

    Args:
        frames: (..., H, W) frames as displayed.
        rotation: :attr:`~cloak.video.container.VideoInfo.rotation`, degrees clockwise (0, 90,
            180, 270).

    Returns:
        the stored frames, ready for :meth:`~cloak.video.writing.VideoWriter.write`.
    """
    return torch.rot90(frames, _quarter_turns(rotation), dims=(-2, -1))


def _batch(images: list[np.ndarray], stamps: list[int], time_base: Fraction,
           start: int) -> FrameBatch:
    """Stack (H, W, 3) uint8 images into a contiguous (N, 3, H, W) float32 batch."""
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    frames = pixels.to(torch.float32, memory_format=torch.contiguous_format)
    return FrameBatch(frames, torch.tensor(stamps, dtype=torch.int64), time_base, start)


def _quarter_turns(rotation: int) -> int:
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
    return rotation // 90

"""Video files opened with PyAV (the FFmpeg bindings that ship FFmpeg in their wheel) and
described (:func:`probe`): size, frames, timing, rotation, codecs, colour tags.

Everything that goes wrong with a file raises :class:`VideoError`, one line naming the file, so
a batch of files can go on with the next one. :mod:`cloak.video.reading` decodes a video,
:mod:`cloak.video.writing` encodes processed frames back.

- Orientation: frames are stored as the camera wrote them; :attr:`VideoInfo.rotation` says how
  a player turns them for display (degrees clockwise: a phone's portrait clip is usually stored
  landscape with 90), from the display matrix or the 'rotate' tag. Mirrored or non-right-angle
  display matrices raise :class:`VideoError`.
- Timing: each frame's pts is in the stream's time base; a clip whose frame gaps differ by more
  than rounding has a variable frame rate (:attr:`VideoInfo.variable_frame_rate`).

>>> # info = probe("clip.mp4")
>>> # info.display_size, info.frame_count, info.rotation
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

from cloak.errors import CloakError
from cloak.fileio import not_regular

__all__ = ["ColorTags", "VideoError", "VideoInfo", "check_complete", "fraction", "open_input",
           "probe", "reason", "video_stream"]

#: Demuxers that open a single picture: such a file is a photo, not a video.
_STILL_FORMATS = ("image2", "tty")


class VideoError(CloakError):
    """A video that cannot be read or written (not a video, truncated, corrupt, unsupported)."""


@dataclass(frozen=True)
class ColorTags:
    """How a video's YUV samples map to RGB, as FFmpeg's enum values.

    Attributes:
        space: AVColorSpace (1 BT.709, 5/6 BT.601, 9 BT.2020, 2 unspecified).
        range: AVColorRange (1 limited 16-235, 2 full 0-255, 0 unspecified = limited).
        primaries: AVColorPrimaries (2 unspecified).
        trc: AVColorTransferCharacteristic (2 unspecified).
    """

    space: int
    range: int
    primaries: int
    trc: int


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found out about a video file.

    Attributes:
        path: the file.
        codec: video codec name (``"h264"``, ``"hevc"``, ...).
        width: stored frame width in pixels (before rotation).
        height: stored frame height in pixels (before rotation).
        frame_count: video packets in the file, counted by demuxing (not decoding); each holds
            one frame for every common codec. Packets the container marks as discarded are not
            counted.
        average_rate: average frames per second.
        time_base: seconds per pts tick of the video stream.
        start_time: pts of the first frame, in seconds.
        duration: seconds from the first frame to the end of the last: the stream's own
            duration where the container stores one (MP4, MOV), else the span of the
            timestamps plus one median frame gap.
        rotation: degrees clockwise a player turns the stored frames: 0, 90, 180 or 270.
        sample_aspect_ratio: width / height of one pixel as displayed (1 for square pixels).
        variable_frame_rate: the gaps between frame timestamps are not all equal (one tick or
            1% of the median gap is allowed for rounding).
        audio_codecs: codec name of each audio stream, in file order.
        color: the YUV matrix, range, primaries and transfer tags of the frames.
    """

    path: Path
    codec: str
    width: int
    height: int
    frame_count: int
    average_rate: Fraction
    time_base: Fraction
    start_time: float
    duration: float
    rotation: int
    sample_aspect_ratio: Fraction
    variable_frame_rate: bool
    audio_codecs: tuple[str, ...]
    color: ColorTags

    @property
    def has_audio(self) -> bool:
        """Whether the file has at least one audio stream."""
        return bool(self.audio_codecs)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) in stored pixels after :attr:`rotation` (see sample_aspect_ratio)."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def probe(path: str | Path) -> VideoInfo:
    """Describe a video: size, frame count, timing, rotation, codecs, colour tags.

    Demuxes every video packet (fast: no decoding) for the count and the timestamps, and decodes
    the first frame to prove the stream decodes and to read its rotation and colour tags.

    Args:
        path: the video file.

    Returns:
        the :class:`VideoInfo`.

    Raises:
        VideoError: missing, empty, not a video, a still image, truncated, corrupt, no decoder,
            no timestamps, or a mirrored display matrix.
    """
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.codec_context.thread_count = 1
        pts: list[int] = []
        demuxed = 0
        first: av.VideoFrame | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                demuxed += 1
                if first is None:
                    first = next(iter(stream.decode(packet)), None)
                if packet.is_discard:
                    continue
                if packet.pts is None:
                    raise VideoError(path, "video packets carry no timestamps")
                pts.append(packet.pts)
            if first is None:
                first = next(iter(stream.decode(None)), None)
        except av.FFmpegError as err:
            raise VideoError(path, f"corrupt video data ({reason(err)})") from None
        check_complete(path, stream, demuxed)
        if first is None or not pts:
            raise VideoError(path, "no decodable video frame")
        time_base = fraction(stream.time_base)
        pts.sort()
        gaps = np.diff(np.asarray(pts, dtype=np.int64))
        span = stream.duration or pts[-1] - pts[0] + (int(np.median(gaps)) if gaps.size else 0)
        average_rate = fraction(stream.average_rate)
        if not average_rate and span > 0:
            average_rate = Fraction(len(pts)) / (span * time_base)
        return VideoInfo(
            path=path,
            codec=stream.codec_context.name,
            width=first.width,
            height=first.height,
            frame_count=len(pts),
            average_rate=average_rate,
            time_base=time_base,
            start_time=float(pts[0] * time_base),
            duration=float(span * time_base),
            rotation=_rotation(first, stream, path),
            sample_aspect_ratio=fraction(stream.sample_aspect_ratio) or Fraction(1),
            variable_frame_rate=_is_variable(gaps),
            audio_codecs=tuple(s.codec_context.name if s.codec_context else s.codec.name
                               for s in container.streams.audio),
            color=ColorTags(int(first.colorspace), int(first.color_range),
                            int(first.color_primaries), int(first.color_trc)),
        )


def _rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream, path: Path) -> int:
    """Degrees clockwise a player turns ``frame``, from its display matrix or 'rotate' tag."""
    side_data = frame.side_data
    for i in range(len(side_data)):
        if side_data[i].type == SideDataType.DISPLAYMATRIX:
            return _rotation_from_matrix(bytes(side_data[i]), path)
    tag = stream.metadata.get("rotate", "0")
    try:
        degrees = float(tag)
    except ValueError:
        raise VideoError(path, f"unreadable rotate tag {tag!r}") from None
    return _right_angle(degrees, path)


def _rotation_from_matrix(data: bytes, path: Path) -> int:
    """Clockwise degrees of an FFmpeg display matrix (nine native int32, 16.16 fixed point)."""
    m = struct.unpack("=9i", data[:36])
    if m[0] * m[4] - m[1] * m[3] < 0:
        raise VideoError(path, "mirrored video (display matrix with a flip) is not supported")
    cos = m[0] / (math.hypot(m[0], m[3]) or 1)
    sin = m[1] / (math.hypot(m[1], m[4]) or 1)
    return _right_angle(math.degrees(math.atan2(sin, cos)), path)


def _right_angle(degrees: float, path: Path) -> int:
    turns = round(degrees / 90)
    if abs(degrees - 90 * turns) > 0.5:
        raise VideoError(path, f"rotation by {degrees:g} degrees is not supported")
    return (90 * turns) % 360


def _is_variable(gaps: np.ndarray) -> bool:
    """Whether frame gaps (ticks) differ by more than rounding: 1 tick or 1% of the median."""
    if gaps.size < 2:
        return False
    tolerance = max(1, int(0.01 * float(np.median(gaps))))
    return int(gaps.max() - gaps.min()) > tolerance


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing or raise a :class:`VideoError` naming it."""
    problem = not_regular(path)
    if problem is not None:
        raise VideoError(path, problem)
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file")
    try:  # metadata that is not UTF-8 (older cameras, damage) is read with replacements
        container = av.open(str(path), "r", metadata_errors="replace")
    except av.FFmpegError as err:
        raise VideoError(path, f"not a video or corrupt ({reason(err)})") from None
    name = container.format.name
    if name in _STILL_FORMATS or name.endswith("_pipe"):
        container.close()
        raise VideoError(path, f"a still image ({name}), not a video")
    return container


def video_stream(container: av.container.InputContainer,
                 path: Path) -> av.video.stream.VideoStream:
    """The first video stream that is not a cover picture, with a decoder."""
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        container.close()
        raise VideoError(path, "no video stream")
    if streams[0].codec_context is None:
        container.close()
        raise VideoError(path, f"no decoder for video codec {streams[0].codec.name}")
    return streams[0]


def check_complete(path: Path, stream: av.video.stream.VideoStream, demuxed: int) -> None:
    """Raise when the container announces more video packets than it delivered."""
    if stream.frames and demuxed < stream.frames:
        raise VideoError(path, f"truncated: {demuxed} of {stream.frames} frames present")


def fraction(value: object) -> Fraction:
    """A PyAV rational (Fraction, or AVRational from PyAV 19; None or 0 = unset) as a Fraction."""
    if not value:
        return Fraction(0)
    return Fraction(value.numerator, value.denominator)


def reason(err: OSError | av.FFmpegError) -> str:
    """The error's text without the errno and file name, lower case."""
    return (err.strerror or str(err)).lower()

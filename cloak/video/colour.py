"""8-bit 4:2:0 YUV frames and RGB, whole or a window at a time (swscale through PyAV).

A decoded H.264 frame is usually 8-bit 4:2:0 YUV (``yuv420p``): a full-size luma plane and two
half-size chroma planes, held here as one (H * 3/2, W) uint8 array in PyAV's layout (luma rows,
then the U plane's rows two to a row, then V's). The masks are pasted in RGB, but only on a
few windows of each frame, so the renderer keeps frames in YUV (the encoder's input) and turns
only the windows to RGB and back (:func:`window_rgb`, :func:`put_window`): the rest of each
frame goes to the encoder exactly as decoded, with no colour conversion either way.

A window with even corners converts to exactly the RGB that converting the whole frame gives
on it (swscale's unscaled YUV-to-RGB gives each 2x2 block its own chroma); converted back, its
luma is what converting the whole frame would give, and its chroma differs by at most one level
on its outer ring of 2x2 blocks (the chroma filter reads past the window's edge there).

>>> planes = np.full((6, 4), 128, np.uint8); planes[:4] = 100  # 4x4 grey, luma 100
>>> window_rgb(planes, (0, 0, 2, 2), ColorTags(1, 1, 1, 1)).shape
(2, 2, 3)
"""

from __future__ import annotations

import av
import numpy as np

from cloak.video.container import ColorTags

__all__ = ["put_window", "to_yuv420p", "window_rgb"]

#: FFmpeg AVColorSpace -> the swscale matrix name PyAV's reformat takes.
_SWS_MATRIX = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020",
              10: "bt2020"}
#: AVColorRange limited (16-235), what an unspecified range means.
_RANGE_LIMITED = 1

Box = tuple[int, int, int, int]


def to_yuv420p(rgb: np.ndarray, color: ColorTags) -> av.VideoFrame:
    """An (H, W, 3) uint8 RGB image (even H, W) as a yuv420p frame with ``color``'s matrix and
    range (BT.601 and limited range when unspecified), as the encoder takes it."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=_SWS_MATRIX.get(color.space, "itu601"),
                          dst_color_range=color.range or _RANGE_LIMITED)


def _window_planes(planes: np.ndarray, box: Box) -> np.ndarray:
    """The window ``box`` (even corners) of (H * 3/2, W) yuv420p planes, in the same layout."""
    x0, y0, x1, y1 = box
    height, width = planes.shape[0] * 2 // 3, planes.shape[1]
    chroma = planes[height:].reshape(2, height // 2, width // 2)
    parts = [planes[y0:y1, x0:x1], chroma[0, y0 // 2:y1 // 2, x0 // 2:x1 // 2],
             chroma[1, y0 // 2:y1 // 2, x0 // 2:x1 // 2]]
    return np.concatenate([p.reshape(-1) for p in parts]).reshape((y1 - y0) * 3 // 2, x1 - x0)


def window_rgb(planes: np.ndarray, box: Box, color: ColorTags) -> np.ndarray:
    """(h, w, 3) uint8 RGB of the window ``box`` = ``(x0, y0, x1, y1)`` (even corners, x1 and
    y1 exclusive) of (H * 3/2, W) yuv420p planes tagged ``color``: what the decoder's own
    conversion of the whole frame gives there."""
    frame = av.VideoFrame.from_ndarray(_window_planes(planes, box), format="yuv420p")
    frame.colorspace = color.space
    frame.color_range = color.range
    return frame.to_ndarray(format="rgb24")


def put_window(planes: np.ndarray, box: Box, rgb: np.ndarray, color: ColorTags) -> None:
    """Write (h, w, 3) uint8 RGB into the window ``box`` (even corners) of yuv420p planes, in
    place, converted as :func:`to_yuv420p` converts whole frames."""
    x0, y0, x1, y1 = box
    height, width = planes.shape[0] * 2 // 3, planes.shape[1]
    window = to_yuv420p(rgb, color).to_ndarray()
    h, w = y1 - y0, x1 - x0
    planes[y0:y1, x0:x1] = window[:h]
    chroma = planes[height:].reshape(2, height // 2, width // 2)
    window_chroma = window[h:].reshape(2, h // 2, w // 2)
    chroma[:, y0 // 2:y1 // 2, x0 // 2:x1 // 2] = window_chroma

"""Synthetic video clips with known faces: real LFW photos moving over a canvas.

Each :class:`Actor` is one LFW photo cut out around its face (a feathered ellipse, so no bystander
of the photo comes along) and moved over a smooth random background along an eased path from a
start to an end position, zooming from a start to an end size, swaying a little (a seeded sum of
slow sines) and rolling a few degrees. Every frame is the real photo resampled, so a face
detector sees real faces at sub-pixel positions and changing scales, plus sensor noise.

Ground truth: the photo's own detection (MTCNN on the still photo) carried through the known
photo-to-canvas transform of each frame. Errors against it measure what the video adds (scale
changes, resampling, noise, compression), not the detector's bias against human annotation.

>>> # det = attackers.load("mtcnn")
>>> # clip = render_clip(crossing_scene(people, stranger), det, size=(320, 240), frames=40)
>>> # clip.frames.shape == (40, 3, 240, 320); clip.landmarks.shape == (40, 3, 5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F

from attackers.detectors.mtcnn import MTCNN
from evaluation.protocol.lfw import central_face_index, load_rgb

__all__ = ["Actor", "SyntheticClip", "crossing_scene", "landmark_error", "landmark_jitter",
           "person_of", "render_clip", "render_clip_file", "write_clip"]


@dataclass(frozen=True)
class Actor:
    """One face moving through a clip.

    Attributes:
        photo: an LFW photo (face near the centre).
        start: face-box centre ``(x, y)`` at the first frame, as fractions of canvas width and
            height.
        end: the same at the last frame.
        size: face-box width at the first and at the last frame, as fractions of canvas height.
        roll: amplitude in degrees of a slow in-plane rotation (one sine period over the clip).
    """

    photo: Path
    start: tuple[float, float]
    end: tuple[float, float]
    size: tuple[float, float] = (0.22, 0.22)
    roll: float = 0.0

    @property
    def label(self) -> str:
        """The person's name, from the LFW file name."""
        return person_of(self.photo)


@dataclass(frozen=True)
class SyntheticClip:
    """A rendered clip and where each actor's face is in each frame.

    Attributes:
        frames: (N, 3, H, W) float32 RGB, whole numbers in [0, 255]; None when the clip was
            rendered straight into a file (:func:`render_clip_file`).
        fps: frames per second.
        labels: each actor's person name, in actor order.
        boxes: (N, A, 4) float32 face boxes ``x1, y1, x2, y2`` in canvas pixels.
        landmarks: (N, A, 5, 2) float32 landmarks (MTCNN order) in canvas pixel-index
            coordinates.
        visible: (N, A) bool, the face box lies wholly inside the canvas.
    """

    frames: torch.Tensor | None
    fps: int
    labels: tuple[str, ...]
    boxes: torch.Tensor
    landmarks: torch.Tensor
    visible: torch.Tensor


def person_of(photo: Path) -> str:
    """Person name of an LFW file: ``Colin_Powell_0001.jpg`` -> ``Colin_Powell``."""
    return photo.stem.rsplit("_", 1)[0]


def crossing_scene(people: Sequence[Path], stranger: Path | None = None,
                   separation: float = 0.24) -> list[Actor]:
    """Two people swapping sides (passing each other near the centre) and a drifting stranger.

    The first person walks left to right in the upper half and comes closer (grows), the second
    right to left in the lower half and recedes; at the crossing their face centres are
    ``separation`` canvas heights apart vertically. The stranger drifts slowly in the top right
    corner.

    Args:
        people: two LFW photos.
        stranger: an LFW photo of someone else, or None.
        separation: vertical distance of the two face centres at the crossing, canvas heights.

    Returns:
        the actors, people first, stranger last (drawn in that order).
    """
    if len(people) != 2:
        raise ValueError(f"crossing_scene needs 2 people, got {len(people)}")
    top, bottom = 0.5 - separation / 2, 0.5 + separation / 2
    actors = [Actor(people[0], (0.2, top - 0.02), (0.8, top + 0.02), (0.2, 0.25), roll=4.0),
              Actor(people[1], (0.8, bottom + 0.02), (0.2, bottom - 0.02), (0.25, 0.2), roll=-4.0)]
    if stranger is not None:
        actors.append(Actor(stranger, (0.9, 0.15), (0.86, 0.18), (0.15, 0.16)))
    return actors


def render_clip(actors: Sequence[Actor], detector: MTCNN, *, size: tuple[int, int] = (1280, 720),
                frames: int = 40, fps: int = 25, seed: int = 0, sway: float = 0.015,
                noise: float = 2.0) -> SyntheticClip:
    """Render a clip of the actors over a smooth random background.

    Args:
        actors: drawn in order (later ones in front).
        detector: finds each photo's face once, for the cut-out and the ground truth.
        size: canvas ``(width, height)`` in pixels.
        frames: number of frames (at least 2).
        fps: frames per second (only recorded).
        seed: seeds the background, the sway and the noise.
        sway: amplitude of the random wandering off the eased path, canvas heights.
        noise: standard deviation of per-frame Gaussian pixel noise, levels of 255.

    Returns:
        the :class:`SyntheticClip`.

    Raises:
        ValueError: fewer than 2 frames, or the detector finds no face in a photo.
    """
    truth, canvases = _scene(actors, detector, size, frames, fps, seed, sway, noise)
    out = torch.empty(frames, 3, size[1], size[0])
    for t, canvas in enumerate(canvases):
        out[t] = canvas
    return SyntheticClip(out, *truth)


def render_clip_file(actors: Sequence[Actor], detector: MTCNN, path: Path, *,
                     size: tuple[int, int] = (1280, 720), frames: int = 40, fps: int = 25,
                     seed: int = 0, sway: float = 0.015, noise: float = 2.0, crf: int = 18,
                     tone: float | None = 440.0) -> SyntheticClip:
    """:func:`render_clip` straight into a file (:func:`write_clip`), one frame in memory.

    The same frames as ``write_clip(render_clip(...), path)``, for clips too long to hold.

    Returns:
        the clip's ground truth; its ``frames`` is None (they are in the file).
    """
    truth, canvases = _scene(actors, detector, size, frames, fps, seed, sway, noise)
    _encode(canvases, frames, size, fps, path, crf, tone)
    return SyntheticClip(None, *truth)


def _scene(actors: Sequence[Actor], detector: MTCNN, size: tuple[int, int], frames: int, fps: int,
           seed: int, sway: float, noise: float) -> tuple[tuple, Iterator[torch.Tensor]]:
    """The ground truth fields of a clip (after ``frames``) and a generator of its frames."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    width, height = size
    gen = torch.Generator().manual_seed(seed)
    sprites = [_sprite(actor.photo, detector) for actor in actors]
    background = _background(width, height, gen)
    u = torch.linspace(0, 1, frames, dtype=torch.float64)
    ease = (1 - torch.cos(math.pi * u)) / 2
    boxes = torch.empty(frames, len(actors), 4)
    marks = torch.empty(frames, len(actors), 5, 2)
    paths = []
    for actor in actors:
        start = torch.tensor(actor.start, dtype=torch.float64)
        end = torch.tensor(actor.end, dtype=torch.float64)
        centre = (start + (end - start) * ease[:, None]) * torch.tensor([width, height])
        centre = centre + sway * height * _wander(frames, gen)
        face_w = (actor.size[0] + (actor.size[1] - actor.size[0]) * ease) * height
        angle = math.radians(actor.roll) * torch.sin(2 * math.pi * u)
        paths.append((centre, face_w, angle))
    placements = []
    for t in range(frames):
        placements.append([])
        for a, ((_, box, points), (centre, face_w, angle)) in enumerate(
                zip(sprites, paths, strict=True)):
            matrix = _placement(box, face_w[t].item(), angle[t].item(), centre[t])
            placements[t].append(matrix)
            marks[t, a] = (points.double() @ matrix[:, :2].T + matrix[:, 2]).float()
            scale = face_w[t].item() / (box[2] - box[0]).item()
            mid = (box[:2] + box[2:]).double() / 2 @ matrix[:, :2].T + matrix[:, 2]
            half = (box[2:] - box[:2]).double() * scale / 2
            boxes[t, a] = torch.cat([mid - half, mid + half]).float()
    visible = ((boxes[..., 0] >= 0) & (boxes[..., 1] >= 0) & (boxes[..., 2] <= width - 1)
               & (boxes[..., 3] <= height - 1))

    def canvases() -> Iterator[torch.Tensor]:
        for matrices in placements:
            canvas = background.clone()
            for (rgba, _, _), matrix in zip(sprites, matrices, strict=True):
                _composite(canvas, rgba, matrix)
            canvas += noise * torch.randn(canvas.shape, generator=gen)
            yield canvas.round_().clamp_(0, 255)

    truth = (fps, tuple(a.label for a in actors), boxes, marks, visible)
    return truth, canvases()


def write_clip(clip: SyntheticClip, path: Path, *, crf: int = 18, tone: float | None = 440.0
               ) -> None:
    """Encode a clip to H.264 (yuv420p, BT.709 limited range) with an optional AAC sine tone.

    Args:
        clip: the clip (even width and height), with its frames.
        path: the output file (``.mp4``, ``.mov`` or ``.mkv``).
        crf: x264 constant rate factor.
        tone: frequency in Hz of a mono 48 kHz sine, or None for no audio stream.

    Raises:
        ValueError: an odd width or height, or a clip without frames.
    """
    if clip.frames is None:
        raise ValueError("the clip's frames are not in memory (render_clip_file wrote them)")
    frames, height, width = clip.frames.shape[0], clip.frames.shape[2], clip.frames.shape[3]
    _encode(iter(clip.frames), frames, (width, height), clip.fps, path, crf, tone)


def _encode(canvases: Iterator[torch.Tensor], frames: int, size: tuple[int, int], fps: int,
            path: Path, crf: int, tone: float | None) -> None:
    """Encode (3, H, W) frames in [0, 255] as :func:`write_clip` describes."""
    import av
    import numpy as np

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs an even size, got {width}x{height}")
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps,
                               options={"crf": str(crf), "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        ctx = video.codec_context
        ctx.time_base = Fraction(1, fps)
        ctx.thread_count = 1
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1
        ctx.color_range = 1
        rate = 48000
        sound = out.add_stream("aac", rate=rate, layout="mono") if tone is not None else None
        for i, canvas in enumerate(canvases):
            image = canvas.permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range=1)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, rate * frames // fps, chunk):
                t = np.arange(start, start + chunk) / rate
                samples = (0.3 * np.sin(2 * math.pi * tone * t)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))


def landmark_jitter(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean frame-to-frame landmark motion that the true motion does not explain.

    ``mean |(p[t+1] - p[t]) - (q[t+1] - q[t])|`` over consecutive frame pairs where both
    estimates are known (not NaN) and over the 5 landmarks: what a mask warped with ``p`` would
    shimmer by, in pixels per frame.

    Args:
        predicted: (N, 5, 2) landmarks per frame, NaN where unknown.
        truth: (N, 5, 2) true landmarks.

    Returns:
        pixels per frame (NaN when no consecutive pair is known).
    """
    step = (predicted[1:] - predicted[:-1]) - (truth[1:] - truth[:-1])
    err = step.norm(dim=-1)
    return float(err[~err.isnan()].mean())


def landmark_error(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean distance in pixels between predicted and true landmarks where predicted is known.

    Args:
        predicted: (N, 5, 2), NaN where unknown.
        truth: (N, 5, 2).
    """
    err = (predicted - truth).norm(dim=-1)
    return float(err[~err.isnan()].mean())


def _sprite(photo: Path, detector: MTCNN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The photo with a feathered elliptical alpha around its central face.

    Returns:
        (4, H, W) premultiplied RGB and alpha in [0, 255] / [0, 1], the face box (4,) and
        landmarks (5, 2) in photo pixels.
    """
    image = load_rgb(photo)
    found = detector.detect([image])[0]
    if not found:
        raise ValueError(f"{photo}: the detector finds no face to animate")
    face = found[central_face_index(torch.stack([d.box for d in found]), tuple(image.shape[1:]))]
    box = face.box
    h, w = image.shape[1:]
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing="ij")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = 0.8 * (box[2] - box[0]), 0.8 * (box[3] - box[1])
    r = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2).sqrt()
    t = ((1 - r) / 0.2).clamp(0, 1)
    alpha = t * t * (3 - 2 * t)
    return torch.cat([image * alpha, alpha[None]]), box, face.landmarks


def _placement(box: torch.Tensor, face_w: float, angle: float, centre: torch.Tensor
               ) -> torch.Tensor:
    """(2, 3) float64 photo-to-canvas similarity putting the box centre at ``centre``."""
    s = face_w / (box[2] - box[0]).item()
    c, sn = s * math.cos(angle), s * math.sin(angle)
    rot = torch.tensor([[c, -sn], [sn, c]], dtype=torch.float64)
    mid = (box[:2] + box[2:]).double() / 2
    return torch.cat([rot, (centre - rot @ mid)[:, None]], 1)


def _composite(canvas: torch.Tensor, rgba: torch.Tensor, matrix: torch.Tensor) -> None:
    """Draw a premultiplied sprite over ``canvas`` (3, H, W) in place, through ``matrix``."""
    h, w = canvas.shape[1:]
    sh, sw = rgba.shape[1:]
    corners = torch.tensor([[0, 0], [sw - 1, 0], [0, sh - 1], [sw - 1, sh - 1]],
                           dtype=torch.float64) @ matrix[:, :2].T + matrix[:, 2]
    x0, y0 = (max(0, math.floor(v)) for v in corners.min(0).values.tolist())
    x1 = min(w, math.ceil(corners[:, 0].max().item()) + 1)
    y1 = min(h, math.ceil(corners[:, 1].max().item()) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    shifted = matrix.clone()
    shifted[:, 2] -= torch.tensor([x0, y0], dtype=torch.float64)
    warped = KT.warp_affine(rgba[None], shifted[None].float(), (y1 - y0, x1 - x0),
                            mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    region = canvas[:, y0:y1, x0:x1]
    region.mul_(1 - warped[3:]).add_(warped[:3])


def _background(width: int, height: int, gen: torch.Generator) -> torch.Tensor:
    """(3, H, W) smooth random colour field in about [50, 210]."""
    coarse = torch.rand(1, 3, 5, 8, generator=gen)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
    return (50 + 160 * field).clamp(0, 255)


def _wander(frames: int, gen: torch.Generator) -> torch.Tensor:
    """(frames, 2) float64 smooth random offsets in about [-1, 1]: two slow sines per axis."""
    t = torch.linspace(0, 1, frames, dtype=torch.float64)[:, None, None]
    freq = 0.5 + 1.5 * torch.rand(1, 2, 2, generator=gen, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(1, 2, 2, generator=gen, dtype=torch.float64)
    return (torch.sin(2 * math.pi * freq * t + phase) / 2).sum(-1)

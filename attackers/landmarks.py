"""68-point face landmarks (dlib's shape predictor, zoo model ``shape68``) for our MTCNN faces.

dlib's 68-point predictor (iBUG 300-W layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67, 0-based) was trained on boxes of dlib's own HOG face detector, which sit tighter and
lower than MTCNN boxes (brow to just under the chin). How a box is chosen for each MTCNN face:

1. ``"hog"``: dlib's HOG detector runs on a crop around the MTCNN box, scaled so the face is
   about :data:`HOG_FACE_SIDE` pixels wide; a HOG box whose centre lies inside the MTCNN box is
   used as is (the predictor's own training distribution).
2. ``"five-points"`` (no HOG box; MTCNN's 5 landmarks given): a square of side 2.248 x the
   eye-to-mouth distance centred 0.090 of it left and 0.063 of it above the midpoint between
   eye centre and mouth centre (:data:`BOX_FROM_FIVE`), then one refinement: the same rule
   applied to the predicted eyes, nose and mouth (:data:`BOX_FROM_SHAPE`), and a second
   prediction.
3. no HOG box and no landmarks: failed. The predictor always returns a face-like shape, even
   on a blank wall, so a box alone cannot vouch for a face. (A box alone still picks among
   HOG boxes: the MTCNN box moved by (-0.079, +0.136, +0.036, -0.041) of its width / height
   on (x1, y1, x2, y2), :data:`BOX_FROM_MTCNN`, is where the HOG box is expected.)

The constants are medians over 62 LFW photos (each person's first photo) where both detectors
found the face. Measured on 124 other LFW photos and 99 UTKFace chips (balanced set, every 20th),
as the mean distance of dlib's eye centres, nose tip and mouth corners from MTCNN's 5 landmarks,
in units of the inter-ocular distance (IOD). The reference is MTCNN run on the photo padded by
80 replicated pixels: on the unpadded 200x200 UTKFace chips MTCNN's boxes reach far off the
image and its landmarks are 0.23 IOD off (eyes placed high), against 0.04 IOD on LFW:

========================  ===============  ==================
box                       LFW mean / max   UTKFace mean / max
========================  ===============  ==================
raw MTCNN box             0.079 / 1.23     0.238 / 1.24
converted box (as 3.)     0.074 / 1.21     0.132 / 1.09
five points (2.)          0.059 / 1.01     0.070 / 0.91
five points + refinement  0.060 / 1.19     0.061 / 1.01
HOG box in the crop (1.)  0.052 / 0.15     0.049 / 0.14
this module (1. then 2.)  0.061 / 1.19     0.051 / 0.15
========================  ===============  ==================

HOG found 221 of the 223 faces; the two fallbacks are
turned-away LFW faces (0.05 IOD, and 1.19 IOD on a profile view whose reference eyes are only
13 px apart). The floor of about 0.05 IOD is largely definitional (dlib's eye centre is the mean
of six eyelid points, MTCNN's a pupil estimate).

A result fails, with a reason, when the box is too small or mostly off the photo, when only a box
is given and HOG finds no face in it, when the shape is implausible (eyes, nose, mouth and jaw out
of order or out of proportion, thresholds well outside the ranges measured on these faces) or
when it disagrees with the detector's 5 landmarks by more than :data:`MAX_FIVE_POINT_ERROR` IOD.
None of the 285 faces above failed.

>>> # marks = Landmarker()(image, face.detection.box, face.detection.landmarks)
>>> # marks.points.shape == (68, 2) if marks.ok else print(marks.failed)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "BOX_FROM_FIVE",
    "BOX_FROM_MTCNN",
    "BOX_FROM_SHAPE",
    "HOG_FACE_SIDE",
    "MAX_FIVE_POINT_ERROR",
    "FaceLandmarks",
    "Landmarker",
    "load_shape68",
    "five_points",
]

#: Face width in pixels the HOG detector sees (its window is 80x80; faces of 80-160 px are found).
HOG_FACE_SIDE = 120
#: dlib box from 5 points: centre x and y offset and side, in eye-to-mouth distances.
BOX_FROM_FIVE = (-0.090, -0.063, 2.248)
#: The same rule applied to the 5 points summarised from a predicted 68-point shape.
BOX_FROM_SHAPE = (-0.070, -0.068, 2.324)
#: dlib box from an MTCNN box: offsets of x1, y1, x2, y2 in box widths / heights.
BOX_FROM_MTCNN = (-0.079, 0.136, 0.036, -0.041)
#: Largest accepted mean distance between dlib's and the detector's 5 points, in IOD.
MAX_FIVE_POINT_ERROR = 0.75
#: Smallest accepted box side in pixels.
MIN_BOX_SIDE = 12.0
#: Smallest accepted share of the box area inside the photo.
MIN_BOX_INSIDE = 0.25


@dataclass(frozen=True)
class FaceLandmarks:
    """68 landmarks of one face, or why there are none.

    Attributes:
        points: (68, 2) float32 ``(x, y)`` photo pixels (pixel-index coordinates, the centre
            of pixel ``i`` at ``i``), 0-based iBUG order; None when failed.
        box: the ``(left, top, right, bottom)`` box the predictor ran on last; None when failed
            before predicting.
        box_source: ``"hog"`` or ``"five-points"`` (see the module docstring).
        failed: the reason, or None.
    """

    points: torch.Tensor | None
    box: tuple[float, float, float, float] | None = None
    box_source: str | None = None
    failed: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


def five_points(points: np.ndarray | torch.Tensor) -> np.ndarray:
    """MTCNN-style 5 points from 68: eye centres (means of 36-41, 42-47), nose tip, mouth corners.

    Args:
        points: (68, 2) ``(x, y)``.

    Returns:
        (5, 2) float64: left eye, right eye, nose, left mouth corner, right mouth corner.
    """
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def _square_from_five(five: np.ndarray, rule: tuple[float, float, float]) -> np.ndarray:
    eyes, mouth = (five[0] + five[1]) / 2, (five[3] + five[4]) / 2
    scale = float(np.linalg.norm(mouth - eyes))
    centre = (eyes + mouth) / 2 + np.array(rule[:2]) * scale
    half = rule[2] * scale / 2
    return np.concatenate([centre - half, centre + half])


def _box_from_mtcnn(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return box + np.array(BOX_FROM_MTCNN) * np.array([w, h, w, h])


def _implausible(points: np.ndarray) -> str | None:
    """Why a shape is not a face (in face axes, units of the inter-ocular distance), or None.

    Measured on 223 good faces: mouth 0.77-1.51 IOD below the eyes, nose tip 0.10-0.86, jaw
    width 1.97-3.40, chin 1.35-2.94 below the eyes.
    """
    if not np.isfinite(points).all():
        return "degenerate landmarks: not finite"
    five = five_points(points)
    axis = five[1] - five[0]
    iod = float(np.linalg.norm(axis))
    if iod < 3.0:
        return f"degenerate landmarks: eyes {iod:.1f} px apart"
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    eyes = (five[0] + five[1]) / 2
    mouth = float(((five[3] + five[4]) / 2 - eyes) @ uy) / iod
    nose = float((five[2] - eyes) @ uy) / iod
    jaw = float((points[16] - points[0]) @ ux) / iod
    chin = float((points[8] - eyes) @ uy) / iod
    if not 0.4 <= mouth <= 2.5 or not 0.0 < nose < mouth:
        return f"degenerate landmarks: mouth {mouth:.2f} and nose {nose:.2f} IOD below the eyes"
    if not 1.2 <= jaw <= 5.0 or not 0.8 <= chin <= 4.5:
        return f"degenerate landmarks: jaw {jaw:.2f} IOD wide, chin {chin:.2f} IOD below the eyes"
    return None


class Landmarker:
    """dlib's 68-point shape predictor with dlib's HOG detector to place its box.

    Args:
        predictor_path: the ``shape_predictor_68_face_landmarks.dat`` file; default: the zoo's
            ``shape68`` (fetched and verified on first use).
    """

    def __init__(self, predictor_path: str | Path | None = None) -> None:
        import dlib

        if predictor_path is None:
            from attackers import zoo

            predictor_path = zoo.fetch("shape68")["weights"]
        path = Path(predictor_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shape predictor file not found")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))
        self._hog = dlib.get_frontal_face_detector()

    def __call__(self, image: torch.Tensor, box: torch.Tensor | Sequence[float],
                 five: torch.Tensor | None = None) -> FaceLandmarks:
        """Landmarks of one face; see :meth:`locate`."""
        return self.locate(image, [box], None if five is None else [five])[0]

    def locate(self, image: torch.Tensor, boxes: Sequence[torch.Tensor | Sequence[float]],
               fives: Sequence[torch.Tensor | None] | None = None) -> list[FaceLandmarks]:
        """Landmarks of the faces of one photo.

        Args:
            image: (3, H, W) float RGB in [0, 255].
            boxes: per face, the detector's ``x1, y1, x2, y2`` in photo pixels.
            fives: per face, the detector's (5, 2) landmarks (MTCNN order) or None.

        Returns:
            one :class:`FaceLandmarks` per box, failed ones with a reason.
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
        pixels = np.ascontiguousarray(
            image.detach().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy())
        fives = [None] * len(boxes) if fives is None else list(fives)
        if len(fives) != len(boxes):
            raise ValueError(f"{len(fives)} five-point sets for {len(boxes)} boxes")
        return [self._locate(pixels, np.asarray(torch.as_tensor(b, dtype=torch.float64)),
                             None if f is None else np.asarray(f, dtype=np.float64))
                for b, f in zip(boxes, fives, strict=True)]

    def _locate(self, pixels: np.ndarray, box: np.ndarray, five: np.ndarray | None
                ) -> FaceLandmarks:
        h, w = pixels.shape[:2]
        if box.shape != (4,) or not np.isfinite(box).all():
            return FaceLandmarks(None, failed=f"invalid box {box.tolist()}")
        bw, bh = box[2] - box[0], box[3] - box[1]
        if min(bw, bh) < MIN_BOX_SIDE:
            return FaceLandmarks(None, failed=f"box too small ({bw:.0f} x {bh:.0f} px)")
        inside = (max(0.0, min(box[2], w) - max(box[0], 0.0))
                  * max(0.0, min(box[3], h) - max(box[1], 0.0))) / (bw * bh)
        if inside < MIN_BOX_INSIDE:
            return FaceLandmarks(None, failed=f"box outside the photo ({inside:.0%} inside)")
        start = _square_from_five(five, BOX_FROM_FIVE) if five is not None else _box_from_mtcnn(box)
        found = self._hog_box(pixels, box, start)
        if found is not None:
            source, dlib_box = "hog", found
            points = self._predict(pixels, dlib_box)
        elif five is None:
            return FaceLandmarks(None, failed="no face in the box (dlib's HOG detector found "
                                 "none and no detector landmarks were given)")
        else:
            source = "five-points"
            points = self._predict(pixels, start)
            dlib_box = _square_from_five(five_points(points), BOX_FROM_SHAPE)
            points = self._predict(pixels, dlib_box)
        used = tuple(float(v) for v in dlib_box)
        reason = _implausible(points)
        if reason is None and five is not None:
            iod = float(np.linalg.norm(five[1] - five[0]))
            gaps = np.linalg.norm(five_points(points) - five, axis=1)
            error = float(gaps.mean()) / max(iod, 1e-6)
            if error > MAX_FIVE_POINT_ERROR:
                reason = (f"landmarks disagree with the detector's 5 points "
                          f"({error:.2f} IOD apart, limit {MAX_FIVE_POINT_ERROR})")
        if reason is not None:
            return FaceLandmarks(None, used, source, reason)
        return FaceLandmarks(torch.from_numpy(points.astype(np.float32)), used, source)

    def _predict(self, pixels: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(pixels, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def _hog_box(self, pixels: np.ndarray, box: np.ndarray, expected: np.ndarray
                 ) -> np.ndarray | None:
        """dlib's HOG box of the face in ``box`` (centre inside it, nearest ``expected``)."""
        h, w = pixels.shape[:2]
        side = max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = max(0, math.floor(cx - side)), max(0, math.floor(cy - side))
        x1, y1 = min(w, math.ceil(cx + side)), min(h, math.ceil(cy + side))
        scale = HOG_FACE_SIDE / side
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        crop = Image.fromarray(pixels[y0:y1, x0:x1]).resize(size, Image.Resampling.BILINEAR)
        best, best_dist = None, math.inf
        for r in self._hog(np.asarray(crop), 0):
            cand = np.array([r.left(), r.top(), r.right(), r.bottom()]) / scale + [x0, y0, x0, y0]
            centre = (cand[:2] + cand[2:]) / 2
            if not (box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]):
                continue
            dist = float(np.linalg.norm(centre - (expected[:2] + expected[2:]) / 2))
            if dist < best_dist:
                best, best_dist = cand, dist
        return best


def load_shape68(files: dict[str, Path]) -> Landmarker:
    """The zoo loader of ``shape68``: a :class:`Landmarker` on the verified predictor file."""
    return Landmarker(files["weights"])

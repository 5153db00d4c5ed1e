"""The video attacker: the faces it finds in a written clip and how it ranks them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from evaluation.video_clips import SyntheticClip

__all__ = ["attacker_faces", "query_rank"]


def attacker_faces(path: Path, clip: SyntheticClip, actors: Sequence[int], every: int,
                    detector: MTCNN) -> dict[int, list[torch.Tensor | None]]:
    """Per actor, per evaluated frame (every ``every``-th): the attacker's aligned face or None.

    The frames are decoded from the written file. The attacker crops three face widths around
    the true face, runs MTCNN and keeps the face whose box overlaps the true box most (IoU above
    0.3).
    """
    from cloak.faces import align_faces
    from cloak.video.detection import box_iou
    from cloak.video.reading import iter_frames

    found: dict[int, list[torch.Tensor | None]] = {a: [] for a in actors}
    for frame in iter_frames(path, select=lambda i: i % every == 0):
        if frame.index % every:
            continue
        index = frame.index
        height, width = frame.image.shape[:2]
        image = torch.from_numpy(frame.image).permute(2, 0, 1).float()
        for actor in actors:
            box = clip.boxes[index, actor]
            side = float(box[2] - box[0])
            cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            x0, y0 = max(0, int(cx - 1.5 * side)), max(0, int(cy - 1.5 * side))
            x1, y1 = min(width, int(cx + 1.5 * side)), min(height, int(cy + 1.5 * side))
            crop = image[:, y0:y1, x0:x1].contiguous()
            with torch.no_grad():
                faces = align_faces([crop], detector)[0]
            shift = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
            best, overlap = None, 0.3
            for face in faces:
                iou = float(box_iou((face.detection.box + shift)[None], box[None])[0, 0])
                if iou > overlap:
                    best, overlap = face.frame, iou
            found[actor].append(best)
    return found


def query_rank(query: torch.Tensor, genuine: torch.Tensor, distractors: torch.Tensor) -> int:
    """Distractors more similar to ``query`` than its best genuine match (NaN query: all)."""
    if torch.isnan(query).any():
        return len(distractors)
    best = (genuine.double() @ query.double()).max()
    return int(((distractors.double() @ query.double()) > best).sum())

"""Greedy non-maximum suppression of boxes, per group, with MTCNN's two overlap measures.

:func:`nms` is what MTCNN (:mod:`attackers.detectors.mtcnn`) runs after each stage, as
facenet-pytorch does: ``"union"`` (intersection over union, torchvision's ``nms``) or ``"min"``
(intersection over the smaller box, the original MTCNN's variant). Two algorithms give the same
result on boxes sorted by score: :func:`nms_dense` (the whole overlap matrix at once) and
:func:`nms_sequential` (one kept box at a time, linear memory).

>>> boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
>>> nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long), 0.5)
tensor([0, 2])
"""

from __future__ import annotations

import torch

__all__ = ["DENSE_NMS_MAX", "nms", "nms_dense", "nms_sequential"]

#: Largest box count that :func:`nms` handles with a dense (K, K) overlap matrix.
DENSE_NMS_MAX = 4096


def nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
        mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression, independently per group (e.g. per image).

    A box is dropped when its overlap with a higher-scoring kept box of the same group exceeds
    ``threshold``. ``"union"``: intersection over union with areas ``(x2 - x1) * (y2 - y1)``
    (torchvision's ``nms``); ``"min"``: intersection over the smaller area with ``+1`` pixel
    areas (the original MTCNN's "Min" variant). Among equal scores (ONet saturates), "union"
    ranks the lower index first and "min" the higher, as facenet-pytorch does.

    Up to :data:`DENSE_NMS_MAX` boxes, the greedy result is found as the fixed point of
    ``keep[j] = not any(keep[i] and overlap[i, j] > threshold for higher-scoring i)``, iterated
    on the whole overlap matrix (Cluster-NMS, Zheng et al. 2021: same result, few iterations);
    beyond that, one box at a time, so memory stays linear.

    Args:
        boxes: (K, 4) ``x1, y1, x2, y2``.
        scores: (K,).
        groups: (K,) integer group of each box; boxes of different groups never suppress
            each other.
        threshold: overlap above which a box is suppressed.
        mode: ``"union"`` or ``"min"``.

    Returns:
        (M,) int64 indices of the kept boxes, by decreasing score.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"nms mode must be 'union' or 'min', got {mode!r}")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # shift each group far from the others so that one pass handles all groups
    span = (boxes.max() - boxes.min()).item() + 2.0
    shifted = boxes + (groups.to(boxes.dtype) * span)[:, None]
    if mode == "min":  # the original reads an ascending sort from the end: later index first
        order = scores.argsort(stable=True).flip(0)
    else:
        order = scores.argsort(descending=True, stable=True)
    sorted_boxes = shifted[order]
    if order.numel() <= DENSE_NMS_MAX:
        keep = nms_dense(sorted_boxes, threshold, mode)
    else:
        keep = nms_sequential(sorted_boxes, threshold, mode)
    return order[keep]



def _overlap(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    """Overlap of boxes (..., 4) with boxes (..., 4), broadcast, as :func:`nms` defines it."""
    plus = 1.0 if mode == "min" else 0.0
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + plus)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + plus)
    inter = w.clamp(min=0) * h.clamp(min=0)
    area_a = (a[..., 2] - a[..., 0] + plus) * (a[..., 3] - a[..., 1] + plus)
    area_b = (b[..., 2] - b[..., 0] + plus) * (b[..., 3] - b[..., 1] + plus)
    if mode == "min":
        return inter / torch.minimum(area_a, area_b)
    return inter / (area_a + area_b - inter)


def nms_dense(boxes: torch.Tensor, threshold: float, mode: str) -> torch.Tensor:
    """Greedy NMS of boxes sorted by decreasing score, by fixed-point iteration (Cluster-NMS).

    Same result as :func:`nms_sequential`; memory grows with the square of the box count.

    Args:
        boxes: (K, 4) ``x1, y1, x2, y2``, highest score first.
        threshold: overlap above which a box is suppressed.
        mode: ``"union"`` or ``"min"``, as in :func:`nms`.

    Returns:
        (M,) int64 indices into ``boxes`` of the kept boxes, ascending.
    """
    hits = (_overlap(boxes[:, None], boxes[None], mode) > threshold).triu_(1)
    keep = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    while True:
        new = ~(hits & keep[:, None]).any(0)
        if torch.equal(new, keep):
            return keep.nonzero()[:, 0]
        keep = new


def nms_sequential(boxes: torch.Tensor, threshold: float, mode: str) -> torch.Tensor:
    """Greedy NMS of boxes sorted by decreasing score, one kept box at a time.

    Same result as :func:`nms_dense`; memory grows linearly with the box count.

    Args:
        boxes: (K, 4) ``x1, y1, x2, y2``, highest score first; K >= 1.
        threshold: overlap above which a box is suppressed.
        mode: ``"union"`` or ``"min"``, as in :func:`nms`.

    Returns:
        (M,) int64 indices into ``boxes`` of the kept boxes, ascending.
    """
    keep = []
    rest = torch.arange(boxes.shape[0], device=boxes.device)
    while rest.numel() > 0:
        keep.append(rest[0])
        rest = rest[1:]
        rest = rest[_overlap(boxes[keep[-1]], boxes[rest], mode) <= threshold]
    return torch.stack(keep)


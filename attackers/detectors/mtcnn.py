"""MTCNN face detector (Zhang et al., 2016) in torch, on the facenet-pytorch 2.6.0 weights.

Three cascaded networks: :class:`PNet` scans an image pyramid for candidate windows,
:class:`RNet` rejects most of them on 24x24 crops, :class:`ONet` scores 48x48 crops and places
5 landmarks. The pipeline follows facenet-pytorch's ``detect_face`` step by step (same
thresholds, pyramid, box conventions, area resampling and non-maximum suppression
(:mod:`attackers.detectors.nms`)), with two differences that do not change results on ordinary
photos: images of different sizes go in one call (the pyramid runs per image size; stages 2 and
3 run once on all candidates of all images), and crops are resampled from summed-area tables
(:class:`AreaCrops`) instead of one ``interpolate`` call per box. RNet and ONet run on
channels-last crops, and PNet's first pooling skips the index bookkeeping of ``max_pool2d``.

Box coordinates follow facenet-pytorch (the original MATLAB code's 1-based convention, so a
box's ``x1, y1`` sit about one pixel right/below the face's first pixel). Landmarks are in
pixel-index coordinates (the centre of pixel ``i`` is at ``i``), the convention of
:mod:`attackers.frame`.

>>> # det = attackers.load("mtcnn"); det.detect([image])[0][0].landmarks.shape == (5, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from attackers.detectors.nms import nms

__all__ = ["MTCNN", "AreaCrops", "Detection", "ONet", "PNet", "RNet", "load"]


@dataclass
class Detection:
    """One detected face.

    Attributes:
        box: (4,) float32 ``x1, y1, x2, y2`` in photo pixels.
        score: ONet face probability in [0, 1].
        landmarks: (5, 2) float32 ``(x, y)`` photo pixels: left eye, right eye, nose, left mouth
            corner, right mouth corner ("left" = image-left, as in
            :data:`attackers.frame.ARCFACE_112`).
    """

    box: torch.Tensor
    score: float
    landmarks: torch.Tensor


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2, ceil_mode=True)``, exactly, without its index bookkeeping.

    An odd last row or column is padded with -inf (it then forms a window with itself, as with
    ``ceil_mode``), then the maximum of the four strided quarters is taken.
    """
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf"))
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12x12 window per output cell (stride 2).

    Shape:
        input (N, 3, H, W) normalised pixels; outputs box offsets (N, 4, H', W') and face
        probability (N, H', W') with ``H' = ceil((H - 2) / 2) - 4``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool_2x2(self.prelu1(self.conv1(x)))  # the original's MaxPool2d(2, 2, ceil)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement network on 24x24 crops.

    Shape:
        input (N, 3, 24, 24) normalised pixels; outputs box offsets (N, 4), probability (N,).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the weights come from Caffe: flatten in (W, H, C) order
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)[:, 1]


class ONet(nn.Module):
    """Output network on 48x48 crops.

    Shape:
        input (N, 3, 48, 48) normalised pixels; outputs box offsets (N, 4), landmarks (N, 10)
        (5 x then 5 y, as fractions of the crop), probability (N,).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)[:, 1]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow (K, 4) boxes to squares about their centres (side = the longer side)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + (w - side) * 0.5
    y1 = boxes[:, 1] + (h - side) * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply (K, 4) box offsets, in units of the ``+1`` box side (stages 2 and 3)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * torch.stack([w, h, w, h], dim=1)


class AreaCrops:
    """Area-resampled square crops of many boxes of many images, all at once.

    Each image gets a float64 summed-area table; a crop of size ``s`` averages, for output pixel
    ``i``, input rows ``floor(i * h / s)`` to ``ceil((i + 1) * h / s) - 1`` (and likewise
    columns), which is exactly what ``F.interpolate(crop, (s, s), mode="area")`` computes.

    Args:
        images: each (3, H, W) float RGB, all on one device; sizes may differ.

    Example:
        >>> crops = AreaCrops([torch.rand(3, 50, 40) * 255])
        >>> one = torch.tensor([0])
        >>> crops(one, one * 5, one + 29, one * 2, one + 31, 24).shape
        torch.Size([1, 3, 24, 24])
    """

    _CHUNK = 1 << 21  # gathered values per chunk, to bound memory

    def __init__(self, images: Sequence[torch.Tensor]) -> None:
        sizes = [(img.shape[1] + 1, img.shape[2] + 1) for img in images]
        counts = [3 * h * w for h, w in sizes]
        device = images[0].device if images else torch.device("cpu")
        # one flat buffer, each table written in place: no padded copies, no concatenation
        self.table = torch.zeros(sum(counts), dtype=torch.float64, device=device)
        offsets, start = [], 0
        for img, (h, w), count in zip(images, sizes, counts, strict=True):
            inner = self.table[start:start + count].view(3, h, w)[:, 1:, 1:]
            torch.cumsum(img, 2, dtype=torch.float64, out=inner)
            inner.cumsum_(1)
            offsets.append(start)
            start += count
        self.offsets = torch.tensor(offsets, dtype=torch.long, device=device)
        # (n_images, 2): H + 1, W + 1
        self.sizes = torch.tensor(sizes, dtype=torch.long, device=device)

    def __call__(self, image_index: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor,
                 x0: torch.Tensor, x1: torch.Tensor, size: int) -> torch.Tensor:
        """Crops rows ``y0:y1``, columns ``x0:x1`` (0-based, end exclusive) of each image.

        Args:
            image_index: (K,) int64 index of each crop's image.
            y0, y1, x0, x1: (K,) int64 bounds of each crop, inside its image, non-empty.
            size: side of the square output crops.

        Returns:
            (K, 3, size, size) float32.
        """
        out = []
        step = max(1, self._CHUNK // (12 * size * size))
        for s in range(0, image_index.numel(), step):
            sl = slice(s, s + step)
            out.append(self._gather(image_index[sl], y0[sl], y1[sl], x0[sl], x1[sl], size))
        return torch.cat(out) if out else self.table.new_zeros(0, 3, size, size).float()

    def _gather(self, idx: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor, x0: torch.Tensor,
                x1: torch.Tensor, size: int) -> torch.Tensor:
        i = torch.arange(size, device=idx.device)
        h, w = (y1 - y0)[:, None], (x1 - x0)[:, None]
        r0 = y0[:, None] + (i * h) // size                      # (K, size)
        r1 = y0[:, None] + ((i + 1) * h + size - 1) // size
        c0 = x0[:, None] + (i * w) // size
        c1 = x0[:, None] + ((i + 1) * w + size - 1) // size
        row_len = self.sizes[idx, 1]
        plane = self.sizes[idx, 0] * row_len
        channel = torch.arange(3, device=idx.device)
        base = (self.offsets[idx, None] + channel * plane[:, None])[:, :, None, None]

        def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            flat = base + (r * row_len[:, None])[:, None, :, None] + c[:, None, None, :]
            return self.table[flat]

        total = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
        count = ((r1 - r0)[:, :, None] * (c1 - c0)[:, None, :])[:, None]
        return (total / count).float()


class MTCNN(nn.Module):
    """The MTCNN cascade with facenet-pytorch's defaults.

    Args:
        min_face_size: smallest face side (pixels) the pyramid looks for.
        thresholds: face-probability thresholds of PNet, RNet, ONet.
        factor: scale step of the image pyramid.

    Example:
        >>> # det = attackers.load("mtcnn")
        >>> # faces = det.detect([img])  # img: (3, H, W) float32 RGB in [0, 255]
    """

    def __init__(self, min_face_size: float = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709) -> None:
        super().__init__()
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()

    @staticmethod
    def _normalise(x: torch.Tensor) -> torch.Tensor:
        return (x - 127.5) * 0.0078125

    def _scales(self, h: int, w: int, min_face_size: float) -> list[float]:
        m = 12.0 / min_face_size
        side = min(h, w) * m
        scales = []
        while side >= 12:
            scales.append(m * self.factor ** len(scales))
            side *= self.factor
        return scales

    def _propose(self, batch: torch.Tensor, min_face_size: float, chained: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1 on same-sized images: (K, 5) boxes + score, (K,) image indices.

        ``chained``: each pyramid level is area-resampled from the level before instead of
        from the image (see :meth:`detect`).
        """
        h, w = batch.shape[-2:]
        boxes, owners = [], []
        source = batch
        for scale in self._scales(h, w, min_face_size):
            level = F.interpolate(source, size=(int(h * scale + 1), int(w * scale + 1)),
                                  mode="area")
            source = level if chained else batch
            level = self._normalise(level).contiguous(memory_format=torch.channels_last)
            reg, prob = self.pnet(level)
            hit = prob >= self.thresholds[0]
            cell = hit.nonzero()                                   # (K, 3): image, y, x
            score = prob[hit]
            xy = cell[:, [2, 1]].to(batch.dtype)
            found = torch.cat([((2 * xy + 1) / scale).floor(), ((2 * xy + 12) / scale).floor(),
                               score[:, None], reg.permute(0, 2, 3, 1)[hit]], dim=1)
            keep = nms(found[:, :4], score, cell[:, 0], 0.5)
            boxes.append(found[keep])
            owners.append(cell[keep, 0])
        if not boxes:
            return batch.new_zeros(0, 9), torch.zeros(0, dtype=torch.long, device=batch.device)
        return torch.cat(boxes), torch.cat(owners)

    def _crop(self, crops: AreaCrops, boxes: torch.Tensor, owners: torch.Tensor,
              shapes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised crops of boxes clipped to their images, and the mask of non-empty ones."""
        b = boxes[:, :4].trunc().long()
        x0 = b[:, 0].clamp(min=1) - 1
        y0 = b[:, 1].clamp(min=1) - 1
        x1 = torch.minimum(b[:, 2], shapes[owners, 1])
        y1 = torch.minimum(b[:, 3], shapes[owners, 0])
        ok = (x1 > x0) & (y1 > y0)
        data = crops(owners[ok], y0[ok], y1[ok], x0[ok], x1[ok], size)
        # channels-last memory: the faster layout for RNet's and ONet's convolutions on CPU
        return self._normalise(data).contiguous(memory_format=torch.channels_last), ok

    @torch.no_grad()
    def detect(self, images: Sequence[torch.Tensor], *, min_face_size: float | None = None,
               chained_pyramid: bool = False) -> list[list[Detection]]:
        """Detect faces in a list of images of any sizes.

        Args:
            images: each (3, H, W) float32 RGB in [0, 255].
            min_face_size: smallest face side (pixels) the pyramid looks for in this call
                (default: the detector's ``min_face_size``); larger is faster (the pyramid's
                first, largest levels are left out), smaller faces may then be missed.
            chained_pyramid: area-resample each pyramid level from the level before rather
                than from the image: PNet's inputs change slightly (RNet and ONet still crop
                the image), the same faces are found with landmarks a few pixels apart (about
                the spread between pyramids that start at different sizes), and a 720p frame
                costs about a third less when the pyramid starts at 50-80 px faces (video,
                :mod:`cloak.video.detection`). Off by default: photos are detected as before.

        Returns:
            per image, its detections by decreasing score (empty where no face is found).
        """
        min_face_size = self.min_face_size if min_face_size is None else float(min_face_size)
        if min_face_size <= 0:
            raise ValueError(f"min_face_size must be > 0 pixels, got {min_face_size}")
        if not images:
            return []
        for k, img in enumerate(images):
            if img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f"image {k}: expected a (3, H, W) RGB tensor, got shape "
                                 f"{tuple(img.shape)}")
        weight = next(self.parameters())
        device = weight.device
        images = [img.to(device, weight.dtype) for img in images]
        shapes = torch.tensor([img.shape[1:] for img in images], dtype=torch.long, device=device)

        # stage 1: the pyramid, once per distinct image size
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, img in enumerate(images):
            by_size.setdefault(tuple(img.shape[1:]), []).append(k)
        boxes, owners = [], []
        for members in by_size.values():
            b, o = self._propose(torch.stack([images[k] for k in members]), min_face_size,
                                 chained_pyramid)
            boxes.append(b)
            owners.append(torch.tensor(members, dtype=torch.long, device=device)[o])
        boxes, owners = torch.cat(boxes), torch.cat(owners)
        keep = nms(boxes[:, :4], boxes[:, 4], owners, 0.7)
        boxes, owners = boxes[keep], owners[keep]
        side = torch.cat([boxes[:, 2:4] - boxes[:, 0:2]] * 2, dim=1)
        boxes = _square(boxes[:, :4] + boxes[:, 5:9] * side)

        # stage 2: RNet on all candidates of all images
        crops = AreaCrops(images) if len(boxes) else None
        if crops is not None:
            data, ok = self._crop(crops, boxes, owners, shapes, 24)
            boxes, owners = boxes[ok], owners[ok]
            reg, score = self.rnet(data)
            hit = score > self.thresholds[1]
            boxes, owners, reg, score = boxes[hit], owners[hit], reg[hit], score[hit]
            keep = nms(boxes, score, owners, 0.7)
            boxes = _square(_regress(boxes[keep], reg[keep]))
            owners = owners[keep]

        # stage 3: ONet on the survivors
        result: list[list[Detection]] = [[] for _ in images]
        if crops is not None and len(boxes):
            data, ok = self._crop(crops, boxes, owners, shapes, 48)
            boxes, owners = boxes[ok], owners[ok]
            reg, marks, score = self.onet(data)
            hit = score > self.thresholds[2]
            boxes, owners, reg, marks, score = (boxes[hit], owners[hit], reg[hit], marks[hit],
                                                score[hit])
            wh = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, None, :]
            points = marks.view(-1, 2, 5).transpose(1, 2) * wh + boxes[:, None, 0:2] - 1
            boxes = _regress(boxes, reg)
            keep = nms(boxes, score, owners, 0.7, mode="min")
            for k in keep.tolist():
                result[int(owners[k])].append(
                    Detection(box=boxes[k].clone(), score=float(score[k]),
                              landmarks=points[k].clone()))
        return result


def load(files: dict[str, Path]) -> MTCNN:
    """Build :class:`MTCNN` from the zoo's ``pnet``, ``rnet``, ``onet`` state-dict files.

    Raises:
        ValueError: a file is missing from ``files`` or does not match the network.
    """
    missing = [name for name in ("pnet", "rnet", "onet") if name not in files]
    if missing:
        raise ValueError(f"mtcnn needs weights files {missing}; got {sorted(files)}")
    model = MTCNN()
    for name in ("pnet", "rnet", "onet"):
        state = torch.load(files[name], map_location="cpu", weights_only=True)
        try:
            getattr(model, name).load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{files[name]}: not MTCNN {name} weights ({exc})") from None
    return model.eval()

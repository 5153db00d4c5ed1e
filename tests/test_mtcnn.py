"""The MTCNN face detector (attackers.detectors.mtcnn) on real photos, and its parts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import shared_data

from attackers.detectors.mtcnn import MTCNN, AreaCrops, load
from evaluation.protocol.lfw import load_rgb


def test_smoke_lfw(mtcnn, lfw_images):
    for found in mtcnn.detect(lfw_images):
        assert found, "no face on an LFW photo"
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
        face = min(found, key=lambda d: ((d.box[:2] + d.box[2:]) / 2 - 124.5).norm())
        assert face.score > 0.99
        centre = (face.box[:2] + face.box[2:]) / 2
        assert (centre - 124.5).abs().max() < 30     # LFW centres the face
        assert 60 < face.box[2] - face.box[0] < 200
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks.tolist()
        assert lx < nx < rx and mlx < mrx             # image-left first
        assert max(ly, ry) < ny < min(mly, mry)       # eyes above nose above mouth
        assert (face.landmarks >= face.box[:2] - 2).all()
        assert (face.landmarks <= face.box[2:] + 2).all()


def test_group_photo(mtcnn, group_photo):
    found = mtcnn.detect([group_photo])[0]
    sure = [d for d in found if d.score > 0.9]
    assert len(sure) == 6
    boxes = torch.stack([d.box for d in sure])
    assert (boxes[:, 2:] - boxes[:, :2]).min() > 60
    # six distinct faces: no two boxes overlap
    x1 = torch.maximum(boxes[:, None, 0], boxes[None, :, 0])
    x2 = torch.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y1 = torch.maximum(boxes[:, None, 1], boxes[None, :, 1])
    y2 = torch.minimum(boxes[:, None, 3], boxes[None, :, 3])
    overlap = ((x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)).fill_diagonal_(0)
    assert overlap.max() == 0


def test_batched_equals_single(mtcnn, lfw_images, group_photo):
    images = [lfw_images[0], group_photo[:, 50:350, 100:600], lfw_images[3]]
    batched = mtcnn.detect(images)
    for image, together in zip(images, batched, strict=True):
        alone = mtcnn.detect([image])[0]
        assert len(alone) == len(together) > 0
        for a, b in zip(alone, together, strict=True):
            assert torch.allclose(a.box, b.box, atol=1e-3)
            assert torch.allclose(a.landmarks, b.landmarks, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_no_face(mtcnn):
    plain = load_rgb(shared_data("bad_inputs", "no_face.jpg"))
    grey = torch.full((3, 300, 200), 128.0)
    tiny = torch.full((3, 10, 10), 128.0)              # smaller than one 12px window
    assert mtcnn.detect([plain, grey, tiny]) == [[], [], []]
    assert mtcnn.detect([]) == []


def test_exception(mtcnn):
    with pytest.raises(ValueError, match="image 0"):
        mtcnn.detect([torch.zeros(1, 50, 50)])
    with pytest.raises(ValueError, match="onet"):
        load({"pnet": "unused", "rnet": "unused"})


def test_zoo_loader(mtcnn):
    assert isinstance(mtcnn, MTCNN) and not mtcnn.training
    assert mtcnn.thresholds == (0.6, 0.7, 0.7)
    assert (mtcnn.factor, mtcnn.min_face_size) == (0.709, 20.0)


@pytest.mark.data
def test_crops_equal_area_interpolation(lfw_images, group_photo):
    """The summed-area crops are F.interpolate(mode="area") of each box, as facenet-pytorch."""
    images = [lfw_images[0], group_photo]
    crops = AreaCrops(images)
    boxes = [(0, 40, 180, 60, 200), (0, 0, 7, 3, 9), (1, 100, 397, 500, 617), (1, 400, 473, 0, 35)]
    idx, y0, y1, x0, x1 = (torch.tensor(c) for c in zip(*boxes, strict=True))
    for size in (24, 48):
        got = crops(idx, y0, y1, x0, x1, size)
        for k, (i, a, b, c, d) in enumerate(boxes):
            want = F.interpolate(images[i][None, :, a:b, c:d], (size, size), mode="area")[0]
            assert torch.allclose(got[k], want, atol=1e-3)


@pytest.mark.data
def test_chained_pyramid_finds_the_same_faces(mtcnn, group_photo):
    """Levels resampled from level to level (the video pass) find the same six faces, boxes
    and landmarks a few percent of the face width from the default pyramid's (bbt4: up to 3.4%
    for landmarks, 5.9% for box sides, at both sizes)."""
    doubled = F.interpolate(group_photo[None], scale_factor=2, mode="bilinear")[0]
    for image, smallest in ((group_photo, 20.0), (doubled, 50.0)):
        default, chained = ([d for d in mtcnn.detect([image], min_face_size=smallest,
                                                     chained_pyramid=chain)[0] if d.score > 0.9]
                            for chain in (False, True))
        assert len(default) == len(chained) == 6
        for face in default:
            width = float(face.box[2] - face.box[0])
            twin = min(chained, key=lambda d, f=face: float((d.box - f.box).abs().sum()))
            assert float((twin.box - face.box).abs().max()) < 0.08 * width
            assert float((twin.landmarks - face.landmarks).norm(dim=1).mean()) < 0.05 * width

"""Faces on real photos (cloak.faces): alignment into the frame and pasting back."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_data

from attackers.frame import FRAME_SIZE, frame_template
from cloak.faces import AlignedFace, align_faces
from cloak.faces.align import (
    bounding_window,
    compose,
    feather_weight,
    frames_footprint,
    invert,
    paste_back,
    similarity_to_frame,
    to_frame,
    translation,
)
from evaluation.protocol.lfw import load_rgb


def _apply(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) affine maps applied to (N, K, 2) points."""
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]


# --- alignment -------------------------------------------------------------------------------

def test_exception():
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        similarity_to_frame(torch.zeros(5, 2))


def test_align_faces_no_face(mtcnn):
    plain = load_rgb(shared_data("bad_inputs", "no_face.jpg"))
    assert align_faces([plain], mtcnn) == [[]]


def test_similarity_recovers_a_known_transform():
    angle = torch.tensor(0.3, dtype=torch.float64)
    rot = 1.7 * torch.stack([torch.stack([angle.cos(), -angle.sin()]),
                             torch.stack([angle.sin(), angle.cos()])])
    to_photo = torch.cat([rot, torch.tensor([[40.0], [-12.0]], dtype=torch.float64)], 1)
    photo = frame_template() @ rot.T + to_photo[:, 2]
    matrix = similarity_to_frame(photo[None])
    assert torch.allclose(matrix[0], invert(to_photo[None])[0], atol=1e-9)


def test_compose_applies_inner_then_outer():
    gen = torch.Generator().manual_seed(0)
    outer = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64)
    inner = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    points = torch.randn(1, 7, 2, generator=gen, dtype=torch.float64).expand(4, -1, -1)
    assert torch.allclose(_apply(compose(outer, inner), points),
                          _apply(outer, _apply(inner[None].expand(4, -1, -1), points)))
    shifted = compose(outer, translation(5, -3))
    assert torch.allclose(_apply(shifted, points), _apply(outer, points + torch.tensor([5, -3])))
    assert compose(outer.float(), inner).dtype == torch.float32


def test_bounding_window():
    points = torch.tensor([[2.5, 3.0], [10.0, 7.9]], dtype=torch.float64)
    assert bounding_window(points, 100, 100) == (2, 3, 11, 9)  # x1, y1 exclusive
    assert bounding_window(points, 100, 100, margin=5) == (0, 0, 16, 14)
    assert bounding_window(points, 5, 8) == (2, 3, 8, 5)
    x0, _, x1, _ = bounding_window(points + 50, 100, 40)
    assert x1 <= x0


def test_frames_footprint_bounds_the_frames_corners():
    """The footprint holds every corner of every frame (plus the margin), clipped to the photo;
    outside the photo it is empty."""
    angle = torch.tensor(0.4, dtype=torch.float64)
    rot = 0.6 * torch.stack([torch.stack([angle.cos(), -angle.sin()]),
                             torch.stack([angle.sin(), angle.cos()])])
    to_photo = torch.stack([torch.cat([rot, torch.tensor([[x], [y]], dtype=torch.float64)], 1)
                            for x, y in [(300.0, 200.0), (520.0, 260.0)]])
    matrices = invert(to_photo)
    last = FRAME_SIZE - 1.0
    corners = torch.tensor([[0.0, 0.0], [last, 0.0], [0.0, last], [last, last]],
                           dtype=torch.float64)[None].expand(2, -1, -1)
    xy = _apply(to_photo, corners).reshape(-1, 2)
    x0, y0, x1, y1 = frames_footprint(matrices, 1000, 1000, margin=2)
    assert x0 <= xy[:, 0].min() - 2 < x0 + 1 and x1 - 1 >= xy[:, 0].max() + 2 > x1 - 2
    assert y0 <= xy[:, 1].min() - 2 < y0 + 1 and y1 - 1 >= xy[:, 1].max() + 2 > y1 - 2
    assert frames_footprint(matrices, 300, 400) == (x0 + 2, y0 + 2, 400, 300)
    far = compose(matrices[:1], translation(5000, 0))
    fx0, _, fx1, _ = frames_footprint(far, 1000, 1000)
    assert fx1 <= fx0


def test_aligned_landmarks_hit_the_template(mtcnn, lfw_images):
    faces = [found[0] for found in align_faces(lfw_images, mtcnn)]
    assert all(isinstance(f, AlignedFace) and f.frame.shape == (3, FRAME_SIZE, FRAME_SIZE)
               for f in faces)
    template = frame_template().float()
    matrices = torch.stack([f.matrix for f in faces])
    moved = _apply(matrices, torch.stack([f.detection.landmarks for f in faces]))
    # a similarity cannot bend a real face onto the template: the residual is the face's shape
    fit = (moved - template).norm(dim=-1)                # (N, 5) frame pixels; measured 3.2 mean
    assert fit.mean() < 4.5
    # on pixels: MTCNN finds the landmarks in the aligned frames where the matrix put them
    again = mtcnn.detect([f.frame for f in faces])
    redetected = torch.stack([found[0].landmarks for found in again])
    error = (redetected - moved).norm(dim=-1)            # measured: mean 1.0, max 1.8
    assert error.max() < 2.5
    assert (redetected - moved).mean((0, 1)).abs().max() < 0.5   # no convention offset
    assert (redetected - template).norm(dim=-1).mean() < 4.5


def test_align_faces_min_face(mtcnn, lfw_images):
    assert align_faces(lfw_images[:1], mtcnn, min_face=1000) == [[]]


def test_gradients_flow_through_to_frame(mtcnn, lfw_images):
    found = mtcnn.detect(lfw_images[:1])[0]
    matrix = similarity_to_frame(found[0].landmarks[None])
    image = lfw_images[0].clone().requires_grad_(True)
    frame = to_frame(image, matrix)
    frame.square().mean().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    small = torch.rand(1, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[[30.0, 2.0, 20.0], [-2.0, 30.0, 25.0]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: to_frame(x, m)[..., ::16, ::16], (small,),
                                    fast_mode=True)


# --- pasting back ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def group_faces(mtcnn, group_photo) -> list[AlignedFace]:
    return align_faces([group_photo], mtcnn)[0]


def test_paste_back_zero_delta(group_photo, group_faces):
    matrices = torch.stack([f.matrix for f in group_faces])
    out = paste_back(group_photo, torch.zeros(3, FRAME_SIZE, FRAME_SIZE), matrices)
    assert torch.equal(out, group_photo)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_paste_back_is_local_and_bounded(group_photo, group_faces, mode):
    gen = torch.Generator().manual_seed(0)
    delta = 8.0 * torch.randint(0, 2, (3, FRAME_SIZE, FRAME_SIZE), generator=gen) * 2 - 8.0
    face = group_faces[0]
    out = paste_back(group_photo, delta, face.matrix[None], feather=6.0, mode=mode)
    change = out - group_photo
    changed = change.abs().amax(0) > 0
    assert changed.sum() > 0.5 * (face.detection.box[2] - face.detection.box[0]) ** 2
    assert change.abs().max() <= 8.0 + 1e-4
    # every changed pixel lies inside the face's frame: its pre-image is within the frame
    ys, xs = changed.nonzero().unbind(1)
    pixels = torch.stack([xs, ys], 1).float()[None]
    in_frame = _apply(face.matrix[None], pixels)[0]
    assert (in_frame > 0).all() and (in_frame < FRAME_SIZE - 1).all()
    # everything else is bit-exact
    assert torch.equal(out[:, ~changed], group_photo[:, ~changed])


def test_paste_back_roundtrip(group_photo, group_faces):
    """A smooth frame delta pasted into a face comes back through to_frame; faces add up."""
    matrices = torch.stack([f.matrix for f in group_faces])
    axis = torch.arange(FRAME_SIZE, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    delta = torch.stack([6 * torch.sin(xx / 15), 6 * torch.cos(yy / 20),
                         6 * torch.sin((xx + yy) / 25)])
    flat = torch.full_like(group_photo, 128.0)           # no clipping anywhere
    grid = torch.stack([xx, yy], -1).view(1, -1, 2)
    h, w = flat.shape[1:]
    total = torch.zeros_like(flat)
    for k in range(len(group_faces)):
        # compare where the frame is fully inside the feather and its pre-image inside the photo
        at = _apply(invert(matrices[k:k + 1]), grid)[0].view(FRAME_SIZE, FRAME_SIZE, 2)
        inside = (at[..., 0] > 1) & (at[..., 0] < w - 2) & (at[..., 1] > 1) & (at[..., 1] < h - 2)
        inner = (feather_weight(10.0) == 1) & inside
        assert inner.sum() > 10_000
        change = paste_back(flat, delta, matrices[k:k + 1], feather=10.0) - flat
        back = to_frame(change, matrices[k:k + 1])[0]
        assert (back[:, inner] - delta[:, inner]).abs().max() < 0.5
        total += change
    together = paste_back(flat, delta, matrices, feather=10.0) - flat
    assert torch.allclose(together, total, atol=1e-4)
    grad_delta = delta.clone().requires_grad_(True)
    paste_back(flat, grad_delta, matrices).sum().backward()
    assert grad_delta.grad.abs().sum() > 0


def test_feather_weight():
    w = feather_weight(8.0)
    assert w.shape == (FRAME_SIZE, FRAME_SIZE)
    assert w[0].max() == 0 and w[:, -1].max() == 0
    assert w[8:-8, 8:-8].min() == 1
    assert (w[112, 1:9].diff() > 0).all()
    assert torch.equal(feather_weight(0.0), torch.ones(FRAME_SIZE, FRAME_SIZE))

"""Masks pasted into 8-bit video frames: what paste_back gives on the whole frame, rounded, with
the video's rotation folded into the alignment (synthetic frames and faces, no data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attackers.frame import FRAME_SIZE
from cloak.faces.align import invert, paste_back
from cloak.mask import Mask
from cloak.video.colour import to_yuv420p, window_rgb
from cloak.video.container import ColorTags
from cloak.video.paste import display_matrix, paste_faces
from cloak.video.tracks import FaceInFrame

FEATHER = 12.0


def face(x: float, y: float, scale: float, angle: float, person: str) -> FaceInFrame:
    """A face whose frame lands at (x, y) in display pixels, ``scale`` display px per frame px."""
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    to_display = torch.tensor([[[c, -s, x], [s, c, y]]], dtype=torch.float64)
    return FaceInFrame(0, person, invert(to_display)[0].float(), torch.zeros(5, 2))


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[FaceInFrame], dict[str, Mask]]:
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (150, 200, 3), generator=gen, dtype=torch.uint8).numpy()
    masks = {name: Mask(torch.rand(3, FRAME_SIZE, FRAME_SIZE, generator=gen) * 16 - 8, 8.0,
                        "center", ["facenet"], name, 0, settings={"feather": FEATHER})
             for name in ("a", "b")}
    faces = [face(20, 10, 0.3, 0.2, "a"), face(70, 30, 0.35, -0.1, "b"),  # overlapping
             face(165, 125, 0.25, 0.0, "a")]                              # partly outside
    return image, faces, masks


def test_equals_paste_back_rounded(scene):
    image, faces, masks = scene
    pasted = image.copy()
    windows = paste_faces(pasted, faces, masks, display_matrix(0, 200, 150))
    assert len(windows) == 2                      # the two overlapping faces share one window
    photo = torch.from_numpy(image).permute(2, 0, 1).float()
    deltas = torch.stack([masks[f.person].delta for f in faces])
    expected = paste_back(photo, deltas, torch.stack([f.matrix for f in faces]),
                          feather=FEATHER).round().to(torch.uint8).permute(1, 2, 0).numpy()
    difference = np.abs(pasted.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    outside = np.ones(image.shape[:2], dtype=bool)
    for (x0, y0, x1, y1), pixels in windows:
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(pixels, pasted[y0:y1, x0:x1])
    assert np.array_equal(pasted[outside], image[outside])


def test_yuv420p_frames_are_pasted_in_rgb_windows(scene):
    """A yuv420p frame gets the RGB paste on windows with even corners; elsewhere its planes
    are kept as they are."""
    image, faces, masks = scene
    color = ColorTags(1, 1, 1, 1)                       # BT.709, limited range
    planes = to_yuv420p(image, color).to_ndarray()
    decoded = window_rgb(planes, (0, 0, 200, 150), color)   # what the decoder shows
    expected = decoded.copy()
    paste_faces(expected, faces, masks, display_matrix(0, 200, 150))
    pasted = planes.copy()
    windows = paste_faces(pasted, faces, masks, display_matrix(0, 200, 150), color)
    assert len(windows) == 2
    luma_outside = np.ones((150, 200), dtype=bool)
    for box, pixels in windows:
        x0, y0, x1, y1 = box
        assert all(v % 2 == 0 for v in box)
        assert np.abs(pixels.astype(int) - expected[y0:y1, x0:x1]).max() <= 1
        luma_outside[y0:y1, x0:x1] = False
        back = to_yuv420p(pixels, color).to_ndarray()
        assert np.array_equal(pasted[y0:y1, x0:x1], back[:y1 - y0])
    assert np.array_equal(pasted[:150][luma_outside], planes[:150][luma_outside])
    chroma_outside = luma_outside[::2, ::2]
    for plane in range(2):
        ours = pasted[150:].reshape(2, 75, 100)[plane]
        theirs = planes[150:].reshape(2, 75, 100)[plane]
        assert np.array_equal(ours[chroma_outside], theirs[chroma_outside])


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_folded_into_the_alignment(scene, rotation):
    """Pasting into the stored frame, then turning it upright, equals pasting upright."""
    image, faces, masks = scene
    upright = image.copy()
    paste_faces(upright, faces, masks, display_matrix(0, 200, 150))
    stored = np.ascontiguousarray(np.rot90(image, rotation // 90, (0, 1)))
    height, width = stored.shape[:2]
    paste_faces(stored, faces, masks, display_matrix(rotation, width, height))
    turned = np.rot90(stored, -rotation // 90, (0, 1))
    assert np.abs(turned.astype(int) - upright.astype(int)).max() <= 1


def test_nothing_to_paste(scene):
    image, _, masks = scene
    pasted = image.copy()
    assert paste_faces(pasted, [], masks, display_matrix(0, 200, 150)) == []
    assert np.array_equal(pasted, image)


def test_display_matrix_exception():
    with pytest.raises(ValueError, match="rotation must be 0, 90, 180 or 270"):
        display_matrix(45, 10, 10)

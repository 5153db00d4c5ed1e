"""Exact real-world transforms (evaluation.transforms) on a real LFW photo.

Margins come from Colin_Powell_0001, Serena_Williams_0001 and Ariel_Sharon_0001 (250 x 250):
JPEG 95 moved them by 0.29 / 0.49 / 0.38 levels on average (at most 6 / 10 / 6), the 2x down-up
resize by 1.6 / 2.0 / 1.6, the median by 0.8 / 1.1 / 0.9.
"""

from __future__ import annotations

import pytest
import torch
from conftest import lfw_photos

from evaluation.protocol.lfw import load_rgb
from evaluation.transforms import (
    TRANSFORMS,
    bilateral,
    blur,
    jpeg,
    median,
    parse_transform,
    resize,
)

NAMES = ("jpeg95", "jpeg85", "jpeg75", "jpeg50", "jpeg30", "resize0.5", "resize0.25", "blur1",
         "median3", "bilateral")


@pytest.fixture(scope="module")
def photo(one_torch_thread) -> torch.Tensor:
    return load_rgb(lfw_photos("Colin_Powell", 1)[0])                 # (3, 250, 250)


def checkerboard(height: int, width: int) -> torch.Tensor:
    """(H, W) of +1 / -1 alternating pixel by pixel: the highest frequency an image holds."""
    return ((torch.arange(height)[:, None] + torch.arange(width)[None]) % 2 * 2 - 1).float()


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_registry_names():
    assert tuple(TRANSFORMS) == NAMES
    for name in NAMES:
        assert parse_transform(name) is TRANSFORMS[name]


def test_exception_unknown_name():
    with pytest.raises(ValueError, match=r"unknown transform 'jpeg96'; valid names: jpeg95, .*"):
        parse_transform("jpeg96")


@pytest.mark.data
@pytest.mark.parametrize("name", NAMES)
def test_cardinality(photo, name):
    odd = photo[:, 20:121, 30:107]                                      # (3, 101, 77)
    for image in (photo, odd):
        out = TRANSFORMS[name](image)
        assert out.shape == image.shape and out.dtype == torch.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 255
        assert torch.equal(out, out.round())
        assert mad(out, image) > 0.1                                    # it changes a real photo
    # the input is rounded to 8-bit levels first, as a file write would
    assert torch.equal(TRANSFORMS[name](photo + 0.3), TRANSFORMS[name](photo))


@pytest.mark.data
def test_jpeg_quality_order(photo):
    moved = [mad(jpeg(photo, q), photo) for q in (95, 85, 75, 50, 30)]
    assert moved == sorted(moved)                                       # measured 0.29 ... 2.86
    assert moved[0] < 0.8
    assert float((jpeg(photo, 95) - photo).abs().max()) <= 14


@pytest.mark.data
def test_jpeg_subsamples_chroma(photo):
    """A pixel checkerboard along red - blue: its luma survives JPEG 95, its chroma (4:2:0) not."""
    inner = photo.clamp(16, 239)
    board = checkerboard(*photo.shape[1:])
    pattern = torch.stack([8 * board, 0 * board, -8 * board])          # Y 1.5, Cr 4.6 levels
    survived = jpeg(inner + pattern, 95) - jpeg(inner, 95)
    luma = 0.299 * survived[0] + 0.587 * survived[1] + 0.114 * survived[2]
    chroma_red = 0.5 * survived[0] - 0.418688 * survived[1] - 0.081312 * survived[2]
    assert float((luma * board).mean()) > 0.7                           # measured 1.0
    assert abs(float((chroma_red * board).mean())) < 0.2                # measured 0.001


@pytest.mark.data
def test_resize_removes_high_frequencies(photo):
    inner = photo.clamp(8, 247)
    board = 8 * checkerboard(*photo.shape[1:])
    assert mad(resize(inner + board, 0.5), resize(inner, 0.5)) < 0.05    # measured 0.005
    assert mad(jpeg(inner + board, 95), jpeg(inner, 95)) > 6            # measured 7.7 of 8
    half, quarter = mad(resize(photo, 0.5), photo), mad(resize(photo, 0.25), photo)
    assert half < 2.5 and half < quarter                                # measured 1.6 < 3.8


def test_blur_of_an_impulse():
    impulse = torch.zeros(3, 21, 21)
    impulse[:, 10, 10] = 255
    out = blur(impulse, 1.0)
    assert float(out[0, 10, 10]) == pytest.approx(255 / (2 * torch.pi), abs=1)   # 40.6
    assert float(out.sum()) / 3 == pytest.approx(255, abs=12)           # 249: rounded tails
    assert torch.equal(out, out.transpose(1, 2)) and torch.equal(out[0], out[2])


@pytest.mark.data
def test_median_removes_impulse_noise(photo):
    gen = torch.Generator().manual_seed(0)
    salted = photo.clone()
    salted[:, torch.rand(photo.shape[1:], generator=gen) < 0.01] = 255.0
    assert mad(salted, photo) > 0.8
    assert mad(median(salted, 3), median(photo, 3)) < 0.2               # measured 0.06
    assert mad(median(photo, 3), photo) < 1.5                           # measured 0.84


def test_bilateral_keeps_edges_and_smooths_flat_regions():
    gen = torch.Generator().manual_seed(0)
    step = torch.full((3, 40, 40), 40.0)
    step[:, :, 20:] = 200.0
    noisy = step + 8 * torch.randn(step.shape, generator=gen)
    out, blurred = bilateral(noisy), blur(noisy, 1.0)
    flat = out[:, :, 4:16]
    assert float(flat.std()) < 0.3 * float(noisy[:, :, 4:16].std())     # measured 1.0 / 7.9
    assert float((out[:, :, 20] - out[:, :, 19]).mean()) > 140          # the edge stays sharp
    assert float((blurred[:, :, 20] - blurred[:, :, 19]).mean()) < 100  # where a blur spreads it


@pytest.mark.data
def test_exception(photo):
    with pytest.raises(ValueError, match=r"shape \(3, H, W\)"):
        jpeg(photo[None], 75)
    with pytest.raises(TypeError, match="float tensor"):
        jpeg(photo.to(torch.uint8), 75)
    with pytest.raises(TypeError, match="torch.Tensor"):
        jpeg(photo.numpy(), 75)
    with pytest.raises(ValueError, match="quality"):
        jpeg(photo, 0)
    with pytest.raises(ValueError, match="factor"):
        resize(photo, 1.5)
    with pytest.raises(ValueError, match="sigma"):
        blur(photo, 0.0)
    with pytest.raises(ValueError, match="odd"):
        median(photo, 4)
    with pytest.raises(ValueError, match="odd"):
        bilateral(photo, size=8)

"""Image quality metrics against direct numpy formulas, on a real LFW photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import lfw_photos, numpy_ssim

from cloak.quality import linf, photo_quality, psnr, ssim
from evaluation.protocol.lfw import load_rgb


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_rgb(lfw_photos("Colin_Powell", 1)[0])                 # (3, 250, 250)


@pytest.mark.data
def test_psnr_of_known_noise(photo):
    gen = torch.Generator().manual_seed(0)
    inner = photo.clamp(10, 245)
    signs = torch.randint(0, 2, photo.shape, generator=gen) * 2 - 1
    noisy = inner + 3.0 * signs                                         # MSE exactly 9
    assert psnr(inner, noisy) == pytest.approx(10 * math.log10(255 ** 2 / 9), abs=1e-9)
    uniform = (photo + torch.empty_like(photo).uniform_(-8, 8, generator=gen)).round().clamp(0, 255)
    mse = np.mean((photo.numpy().astype(np.float64) - uniform.numpy()) ** 2)
    assert psnr(photo, uniform) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert psnr(photo, photo) == math.inf


@pytest.mark.data
def test_ssim_against_numpy(photo):
    assert ssim(photo, photo) == pytest.approx(1.0, abs=1e-9)
    gen = torch.Generator().manual_seed(1)
    previous = 1.0
    for level in (2.0, 8.0, 32.0):
        noisy = (photo + torch.empty_like(photo).uniform_(-level, level, generator=gen)).clamp(
            0, 255)
        value = ssim(photo, noisy)
        expected = numpy_ssim(photo.double().numpy(), noisy.double().numpy())
        assert value == pytest.approx(expected, abs=1e-6)
        assert value < previous                                         # more noise, lower SSIM
        previous = value
    batch = torch.stack([photo, photo])
    assert ssim(batch, batch.flip(0)) == pytest.approx(1.0)


@pytest.mark.data
def test_linf_and_photo_quality(photo):
    changed = photo.clone()
    changed[1, 100, 120] = 255 - changed[1, 100, 120]
    expected = float(abs(255 - 2 * photo[1, 100, 120]))
    assert linf(photo, changed) == expected
    q = photo_quality(photo, changed)
    assert (q.linf, q.ssim < 1.0, q.psnr > 50) == (expected, True, True)


@pytest.mark.data
def test_exception(photo):
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(photo, photo[:, :10])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(photo[:, :8, :8], photo[:, :8, :8])
    with pytest.raises(ValueError, match="photos must be"):
        linf(photo[0], photo[0])


def test_strips_equal_one_pass():
    """A photo taller than a strip is scored strip by strip (SSIM's windows overlapping): the
    figures are the one-pass ones (kornia's SSIM map, numpy's SSIM and MSE), to rounding; uint8
    photos are converted strip by strip."""
    from kornia.metrics import ssim as kornia_ssim

    from cloak.quality import SSIM_WINDOW, STRIP_ROWS

    gen = torch.Generator().manual_seed(2)
    height = 2 * STRIP_ROWS + 37                                   # three strips, the last short
    a = torch.randint(0, 256, (3, height, 40), generator=gen, dtype=torch.uint8)
    noise = torch.randint(-9, 10, a.shape, generator=gen)
    b = (a.int() + noise).clamp(0, 255).to(torch.uint8)
    x, y = a.double(), b.double()
    whole = float(kornia_ssim(x[None], y[None], SSIM_WINDOW, max_val=255.0,
                              padding="valid").mean())
    assert ssim(a, b) == pytest.approx(whole, abs=1e-12)
    assert ssim(a, b) == pytest.approx(numpy_ssim(x.numpy(), y.numpy()), abs=1e-9)
    assert ssim(a, b) < 0.999                                          # not trivially 1
    mse = float(((x - y) ** 2).mean())
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert psnr(a, a) == math.inf
    assert linf(a, b) == float((x - y).abs().max()) == 9.0

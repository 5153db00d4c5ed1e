"""Image quality metrics against direct numpy formulas, on a real LFW photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import lfw_photos
from scipy.signal import correlate2d

from cloak.quality import linf, photo_quality, psnr, ssim
from evaluation.protocol.lfw import load_rgb


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_rgb(lfw_photos("Colin_Powell", 1)[0])                 # (3, 250, 250)


def numpy_ssim(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> float:
    """Wang et al. (2004): Gaussian window 11, sigma 1.5, valid windows, mean over channels."""
    x = np.arange(11) - 5.0
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    maps = []
    for u, v in zip(a, b, strict=True):
        mu_u, mu_v = correlate2d(u, w, "valid"), correlate2d(v, w, "valid")
        var_u = correlate2d(u * u, w, "valid") - mu_u ** 2
        var_v = correlate2d(v * v, w, "valid") - mu_v ** 2
        cov = correlate2d(u * v, w, "valid") - mu_u * mu_v
        maps.append((2 * mu_u * mu_v + c1) * (2 * cov + c2)
                    / ((mu_u ** 2 + mu_v ** 2 + c1) * (var_u + var_v + c2)))
    return float(np.mean(maps))


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


def test_ssim_in_strips_equals_one_map():
    """A photo taller than a strip is scored strip by strip with overlapping windows: the mean
    is the one-map mean of kornia (and of numpy), to rounding."""
    from kornia.metrics import ssim as kornia_ssim

    from cloak.quality import SSIM_STRIP_ROWS, SSIM_WINDOW

    gen = torch.Generator().manual_seed(2)
    height = 2 * SSIM_STRIP_ROWS + 37                   # three strips, the last short
    a = torch.rand(3, height, 40, generator=gen, dtype=torch.float64) * 255
    b = (a + torch.empty_like(a).uniform_(-9, 9, generator=gen)).clamp(0, 255)
    whole = float(kornia_ssim(a[None], b[None], SSIM_WINDOW, max_val=255.0,
                              padding="valid").mean())
    assert ssim(a, b) == pytest.approx(whole, abs=1e-12)
    assert ssim(a, b) == pytest.approx(numpy_ssim(a.numpy(), b.numpy()), abs=1e-9)
    assert ssim(a, b) < 0.999                                          # not trivially 1

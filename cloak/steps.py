"""Small composable pieces of a sign-gradient mask update (OPOM's FIM and its transfer boosters).

Each piece is a plain function, plus a thin class where it keeps state (a generator, a momentum
buffer), in the style of kornia. A mask ``delta`` is a perturbation in pixel units (0..255 scale),
bounded in L-inf by ``eps``; every update ends in the one projection idiom, :func:`project`.

- :func:`random_start`: uniform start in the eps ball (OPOM; Madry et al. 2018, PGD);
- :func:`project` and :func:`fim_step`: OPOM's FIM step, ``delta <- clip(delta + a * sign(g))``
  (Zhong & Deng, "OPOM", TPAMI 2022; the fast gradient sign method of Goodfellow et al. 2015);
- :func:`momentum_update` / :class:`Momentum`: MI-FGSM (Dong et al., "Boosting Adversarial Attacks
  with Momentum", CVPR 2018);
- :func:`input_diversity` / :class:`InputDiversity`: DI (Xie et al., "Improving Transferability of
  Adversarial Examples with Input Diversity", CVPR 2019), a random resize, shift and small rotation
  of the inputs before the surrogates;
- :func:`translation_invariance` / :class:`TranslationInvariance`: TI (Dong et al., "Evading
  Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks", CVPR 2019),
  Gaussian smoothing of the gradient;
- :class:`PhotoTurns`: which training photos each step learns from (all, or a few in turn, as
  the mini-batches of stochastic gradient descent).

>>> gen = torch.Generator().manual_seed(0)
>>> delta = random_start((3, 8, 8), 8.0, gen)
>>> grad = torch.randn(3, 8, 8, generator=gen)
>>> delta = fim_step(delta, translation_invariance(grad, 3), step_size=1.0, eps=8.0)
>>> bool(delta.abs().max() <= 8.0)
True
"""

from __future__ import annotations

import math

import kornia.filters as KF
import kornia.geometry.transform as KT
import torch
from torch import nn

__all__ = [
    "InputDiversity",
    "Momentum",
    "PhotoTurns",
    "TranslationInvariance",
    "fim_step",
    "input_diversity",
    "momentum_update",
    "project",
    "random_start",
    "translation_invariance",
]

_TINY = 1e-12  # guards the momentum normalisation against an all-zero gradient


def _check_eps(eps: float) -> None:
    if not eps > 0:
        raise ValueError(f"eps must be > 0 pixel levels, got {eps}")


def random_start(shape: tuple[int, ...], eps: float, generator: torch.Generator) -> torch.Tensor:
    """A uniform random mask in the eps ball, ``U[-eps, eps]`` per element.

    Args:
        shape: shape of the mask, e.g. ``(3, 224, 224)``.
        eps: L-inf radius in pixel levels (> 0).
        generator: seeded CPU generator; the same seed gives the same start.

    Returns:
        float32 tensor of ``shape`` in [-eps, eps].
    """
    _check_eps(eps)
    return (torch.rand(shape, generator=generator) * 2 - 1) * eps


def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Projection onto the L-inf ball of radius ``eps``: clamp, then detach.

    The only projection used by the optimiser; the pixel range [0, 255] is enforced where the
    mask meets a photo (:func:`cloak.faces.align.paste_back` clips).

    Args:
        delta: any shape, pixel units.
        eps: radius (> 0).

    Returns:
        a new tensor of the same shape in [-eps, eps], without gradient history.
    """
    _check_eps(eps)
    return delta.detach().clamp(-eps, eps)


def fim_step(delta: torch.Tensor, grad: torch.Tensor, step_size: float, eps: float) -> torch.Tensor:
    """OPOM's FIM update: ``project(delta + step_size * sign(grad))``, ascending the loss.

    ``grad`` is the gradient of the batch-mean loss with respect to the shared mask (OPOM takes
    the sign of the mean of the per-image gradients, the same direction), possibly smoothed
    (:func:`translation_invariance`) or accumulated (:func:`momentum_update`) first.

    Args:
        delta: current mask, pixel units.
        grad: same shape as ``delta``.
        step_size: step in pixel levels (> 0).
        eps: L-inf radius (> 0).

    Returns:
        the updated mask, same shape, in [-eps, eps], detached.
    """
    if grad.shape != delta.shape:
        raise ValueError(f"grad shape {tuple(grad.shape)} differs from delta {tuple(delta.shape)}")
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    return project(delta.detach() + step_size * grad.sign(), eps)


def momentum_update(momentum: torch.Tensor, grad: torch.Tensor, mu: float) -> torch.Tensor:
    """MI-FGSM accumulation: ``mu * momentum + grad / mean(|grad|)``.

    The gradient is divided by its mean absolute value over the whole tensor (one mask), so each
    step adds a unit-scale direction whatever the loss scale (Dong et al. 2018, eq. 6).

    Args:
        momentum: accumulated direction, same shape as ``grad`` (zeros at the start).
        grad: current gradient.
        mu: decay factor (>= 0; 0 gives the normalised gradient alone).

    Returns:
        the new accumulated direction, same shape.
    """
    if mu < 0:
        raise ValueError(f"momentum mu must be >= 0, got {mu}")
    return mu * momentum + grad / grad.abs().mean().clamp_min(_TINY)


class Momentum:
    """MI-FGSM state: keeps the accumulated direction between steps.

    Args:
        mu: decay factor (>= 0).

    >>> m = Momentum(1.0)
    >>> m(torch.tensor([2.0, -2.0])).tolist()
    [1.0, -1.0]
    """

    def __init__(self, mu: float) -> None:
        if mu < 0:
            raise ValueError(f"momentum mu must be >= 0, got {mu}")
        self.mu = mu
        self.buffer: torch.Tensor | None = None

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        """Accumulate ``grad`` and return the new direction (same shape)."""
        previous = torch.zeros_like(grad) if self.buffer is None else self.buffer
        self.buffer = momentum_update(previous, grad, self.mu)
        return self.buffer


class PhotoTurns:
    """Which of ``n`` training photos each step learns from: all of them every step
    (``per_step`` 0 or >= ``n``), or ``per_step`` of them taken in turn from a seeded shuffle
    of all ``n``; when fewer than ``per_step`` are left, a new shuffle is appended (its photos
    that are still waiting moved to its end, so no step sees a photo twice), so that every
    photo is seen equally often.

    Args:
        n: number of training photos (>= 1).
        per_step: photos per step (>= 0; 0 = all).
        generator: seeded CPU generator; it is drawn from only when ``per_step`` picks.

    >>> turns = PhotoTurns(4, 2, torch.Generator().manual_seed(0))
    >>> sorted(turns.next() + turns.next())
    [0, 1, 2, 3]
    >>> PhotoTurns(3, 0, torch.Generator()).next()
    [0, 1, 2]
    """

    def __init__(self, n: int, per_step: int, generator: torch.Generator) -> None:
        if n < 1 or per_step < 0:
            raise ValueError(f"PhotoTurns needs n >= 1 and per_step >= 0, got {n}, {per_step}")
        self.n, self.generator = n, generator
        self.per_step = per_step if 0 < per_step < n else 0
        self._queue: list[int] = []

    def next(self) -> list[int]:
        """The indices (in [0, n)) of the photos the next step learns from."""
        if not self.per_step:
            return list(range(self.n))
        if len(self._queue) < self.per_step:
            order = torch.randperm(self.n, generator=self.generator).tolist()
            waiting = set(self._queue)
            self._queue += ([i for i in order if i not in waiting]
                            + [i for i in order if i in waiting])
        chosen, self._queue = self._queue[:self.per_step], self._queue[self.per_step:]
        return chosen


def _diversity_matrices(n: int, size: tuple[int, int], generator: torch.Generator,
                        scale_drop: float, max_shift: float,
                        max_angle: float) -> torch.Tensor:
    """Random similarity matrices (n, 2, 3) about the image centre (4 uniform draws each)."""
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    scale = 1.0 - scale_drop * u[:, 0]
    angle = (2 * u[:, 1] - 1) * max_angle
    shift = (2 * u[:, 2:] - 1) * max_shift
    h, w = size
    centre = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], dtype=torch.float64).expand(n, 2)
    matrices = KT.get_affine_matrix2d(shift, centre, scale[:, None].expand(n, 2), angle)
    return matrices[:, :2].float()


def input_diversity(images: torch.Tensor, prob: float, generator: torch.Generator, *,
                    scale_drop: float = 0.1, max_shift: float = 8.0,
                    max_angle: float = 5.0) -> torch.Tensor:
    """DI: with probability ``prob``, a random resize, shift and rotation of each image.

    Xie et al. (2019) resize the input to a random smaller size and pad it at a random place; here
    that is one similarity per image about its centre: scale ``U[1 - scale_drop, 1]``, shift
    ``U[-max_shift, max_shift]`` pixels in x and y, rotation ``U[-max_angle, max_angle]`` degrees,
    resampled bilinearly with zero padding (kornia ``warp_affine``). The other images pass
    unchanged. Five numbers are drawn from ``generator`` per image on every call, whatever
    ``prob``, so the same seed gives the same sequence. Differentiable in ``images``.

    Args:
        images: (N, C, H, W), any range.
        prob: probability of transforming each image, in [0, 1].
        generator: seeded CPU generator.
        scale_drop: largest relative shrink, in [0, 1).
        max_shift: largest shift in pixels (>= 0).
        max_angle: largest rotation in degrees (>= 0).

    Returns:
        (N, C, H, W), dtype of ``images``.

    Shape:
        (N, C, H, W) -> (N, C, H, W)
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"diversity probability must be in [0, 1], got {prob}")
    if not (0.0 <= scale_drop < 1.0 and max_shift >= 0 and max_angle >= 0):
        raise ValueError(f"need 0 <= scale_drop < 1, max_shift >= 0, max_angle >= 0; got "
                         f"{scale_drop}, {max_shift}, {max_angle}")
    n, _, h, w = images.shape
    chosen = torch.rand(n, generator=generator) < prob
    matrices = _diversity_matrices(n, (h, w), generator, scale_drop, max_shift, max_angle)
    if not chosen.any():
        return images
    moved = KT.warp_affine(images, matrices.to(images), (h, w), mode="bilinear",
                           padding_mode="zeros", align_corners=True)
    if chosen.all():
        return moved
    return torch.where(chosen.to(images.device)[:, None, None, None], moved, images)


class InputDiversity(nn.Module):
    """DI as a module: holds the probability, the ranges and the seeded generator.

    Args:
        prob: probability of transforming each image, in [0, 1].
        generator: seeded CPU generator (shared with the caller's other random draws).
        scale_drop, max_shift, max_angle: see :func:`input_diversity`.

    Shape:
        (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, prob: float, generator: torch.Generator, *, scale_drop: float = 0.1,
                 max_shift: float = 8.0, max_angle: float = 5.0) -> None:
        super().__init__()
        self.prob, self.generator = prob, generator
        self.scale_drop, self.max_shift, self.max_angle = scale_drop, max_shift, max_angle

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return input_diversity(images, self.prob, self.generator, scale_drop=self.scale_drop,
                               max_shift=self.max_shift, max_angle=self.max_angle)


def translation_invariance(grad: torch.Tensor, kernel_size: int,
                           sigma: float | None = None) -> torch.Tensor:
    """TI: smooth a gradient with a Gaussian kernel (kornia ``gaussian_blur2d``, reflect border).

    Dong et al. (2019) convolve the gradient with a Gaussian so the update suits every small
    shift of the input. ``kernel_size = 0`` returns ``grad`` unchanged (TI off).

    Args:
        grad: (C, H, W) or (N, C, H, W).
        kernel_size: odd kernel side in pixels, or 0.
        sigma: standard deviation in pixels; default ``(kernel_size - 1) / 6`` (the kernel spans
            +/- 3 sigma, as in the paper's kernels).

    Returns:
        a tensor of the shape of ``grad``.

    Shape:
        (C, H, W) -> (C, H, W); (N, C, H, W) -> (N, C, H, W)
    """
    if kernel_size == 0:
        return grad
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"TI kernel size must be 0 (off) or odd and >= 3, got {kernel_size}")
    if grad.ndim not in (3, 4):
        raise ValueError(f"grad must be (C, H, W) or (N, C, H, W), got {tuple(grad.shape)}")
    s = (kernel_size - 1) / 6 if sigma is None else float(sigma)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"TI sigma must be > 0, got {sigma}")
    batch = grad if grad.ndim == 4 else grad[None]
    smooth = KF.gaussian_blur2d(batch, (kernel_size, kernel_size), (s, s), border_type="reflect")
    return smooth if grad.ndim == 4 else smooth[0]


class TranslationInvariance(nn.Module):
    """TI as a module: :func:`translation_invariance` with a stored kernel size and sigma.

    Shape:
        (C, H, W) -> (C, H, W); (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, kernel_size: int, sigma: float | None = None) -> None:
        super().__init__()
        self.kernel_size, self.sigma = kernel_size, sigma

    def forward(self, grad: torch.Tensor) -> torch.Tensor:
        return translation_invariance(grad, self.kernel_size, self.sigma)

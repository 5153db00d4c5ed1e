"""OPOM's feature-subspace models: how far a protected feature lies from a person's clean features.

A person is represented by the clean features of their photos, the rows of ``a`` (n, d). A
protected feature ``z`` (d,) is scored by its squared distance to one of three subspaces spanned by
those rows (Zhong & Deng, "OPOM", TPAMI 2022):

- ``"center"``: the class center ``mean(a)``;
- ``"affine"``: the affine hull, ``min ||a^T alpha - z||^2`` subject to ``sum(alpha) = 1``;
- ``"convex"``: the convex hull, the affine constraint plus ``l <= alpha <= u`` (``l = 0, u = 1``;
  tighter bounds give OPOM's "reduced" hull, which shrinks towards the class center).

The coefficients ``alpha`` are solved without gradient and then treated as constants, so the
distance ``||z - a^T alpha||^2`` has gradient ``2 (z - a^T alpha)`` with respect to ``z`` and none
with respect to ``a``. The solves run in float64 whatever the input dtype.

Ridge: the Gram matrix ``G = a a^T`` is singular when the rows are affinely dependent (for example
``n > d + 1``) and badly conditioned when photos are near-duplicates, so the solvers use
``G + ridge * (trace(G) / n) * I``. ``ridge`` is relative to the mean squared row norm (1 for
L2-normalised rows); the default ``1e-6`` changes a distance by at most ``1e-6 * ||alpha||^2`` and
keeps the float64 solves accurate to about 1e-10.

>>> a = torch.eye(3)                               # three photos, the corners of a triangle
>>> z = torch.tensor([[1.0, 1.0, -1.0]])           # in the triangle's plane, outside the triangle
>>> subspace_distance(z, a, "affine", ridge=0.0)
tensor([0.])
>>> subspace_distance(z, a, "convex", ridge=0.0)   # nearest point (0.5, 0.5, 0)
tensor([1.5000])
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

import torch

__all__ = [
    "SUBSPACES",
    "Solver",
    "Subspace",
    "affine_coefficients",
    "center_distance",
    "convex_coefficients",
    "subspace_coefficients",
    "subspace_distance",
]

log = logging.getLogger(__name__)

#: The subspace models, from the loosest (class center) to the tightest fit of the person.
Subspace = Literal["center", "affine", "convex"]
SUBSPACES: tuple[str, ...] = get_args(Subspace)

#: Convex-hull solvers: the batched torch active-set method, or one cvxpy QP per feature.
Solver = Literal["torch", "cvxpy"]
_SOLVERS: tuple[str, ...] = get_args(Solver)

_STEP_TOL = 1e-12  # an active-set step shorter than this (in alpha) counts as no step
_MULT_TOL = 1e-10  # a bound's multiplier above -this counts as non-negative


def _check(z: torch.Tensor, a: torch.Tensor) -> None:
    if z.ndim != 2 or a.ndim != 2:
        raise ValueError(f"expected z (m, d) and a (n, d), got shapes {tuple(z.shape)} and "
                         f"{tuple(a.shape)}")
    if z.shape[1] != a.shape[1]:
        raise ValueError(f"z has {z.shape[1]} dims but a has {a.shape[1]}")
    if a.shape[0] == 0:
        raise ValueError("a holds no features (n = 0)")


def _absolute_ridge(a: torch.Tensor, ridge: float) -> float:
    """``ridge`` times the mean squared row norm of ``a`` (= trace(a a^T) / n)."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    return ridge * float(a.detach().double().pow(2).sum(-1).mean())


def _gram(z: torch.Tensor, a: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridged Gram matrix G (n, n) and inner products b = z a^T (m, n), float64, no gradient."""
    a64 = a.detach().double()
    eye = torch.eye(a64.shape[0], dtype=a64.dtype, device=a64.device)
    return a64 @ a64.T + _absolute_ridge(a, ridge) * eye, z.detach().double() @ a64.T


def _distance(z: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``||z - alpha a||^2`` per row with alpha and a constants: gradient flows through z only."""
    nearest = alpha.to(z.dtype) @ a.detach().to(z.dtype)
    return (z - nearest).pow(2).sum(-1)


def center_distance(z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Squared distance of each protected feature to the class center ``mean(a)``.

    Args:
        z: protected features, shape (m, d).
        a: the person's clean features, shape (n, d); treated as a constant.

    Returns:
        shape (m,), ``||z_i - mean(a)||^2``, differentiable in ``z``.
    """
    _check(z, a)
    return (z - a.detach().to(z.dtype).mean(0)).pow(2).sum(-1)


def affine_coefficients(z: torch.Tensor, a: torch.Tensor, *, ridge: float = 1e-6) -> torch.Tensor:
    """Coefficients of each feature's nearest point in the affine hull of the rows of ``a``.

    Solves ``min ||a^T alpha - z||^2`` s.t. ``sum(alpha) = 1`` in closed form through the KKT system
    ``[[G, 1], [1^T, 0]] [alpha; nu] = [a z; 1]`` with ``G = a a^T`` (ridged, see the module
    docstring), for all ``m`` features in one ``torch.linalg.solve``.

    Args:
        z: protected features, shape (m, d).
        a: the person's clean features, shape (n, d).
        ridge: relative ridge added to ``G`` (>= 0).

    Returns:
        alpha, shape (m, n), dtype of ``z``, rows summing to 1; no gradient.
    """
    _check(z, a)
    g, b = _gram(z, a, ridge)
    n = g.shape[0]
    kkt = g.new_zeros(n + 1, n + 1)
    kkt[:n, :n] = g
    kkt[:n, n] = 1.0
    kkt[n, :n] = 1.0
    rhs = torch.cat([b.T, b.new_ones(1, b.shape[0])])
    return torch.linalg.solve(kkt, rhs)[:n].T.to(z.dtype)


def _check_bounds(bounds: tuple[float, float], n: int) -> tuple[float, float]:
    low, high = float(bounds[0]), float(bounds[1])
    if not (low <= 1.0 / n <= high):
        raise ValueError(f"bounds {bounds} admit no alpha with sum 1 for n = {n} features: "
                         f"need lower <= 1/n <= upper")
    return low, high


def _convex_active_set(g: torch.Tensor, b: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Batched primal active set for ``min a^T G a - 2 b^T a``, ``sum a = 1``, ``l <= a <= u``.

    Nocedal & Wright, "Numerical Optimization", algorithm 16.3, run on all problems at once. Each
    iteration solves, per problem, the equality-constrained QP with the working set's bounds held
    fixed (one batched (n+1) x (n+1) solve); it then steps towards that solution up to the first
    bound it meets (adding that bound to the working set) or, at the solution, releases the bound
    with the most negative multiplier. ``G`` is positive definite (ridged), so each problem ends in
    finitely many iterations at its exact optimum.

    Args:
        g: (n, n) float64 positive definite.
        b: (m, n) float64.
        low, high: feasible bounds (``low <= 1/n <= high``).

    Returns:
        (m, n) float64 optimal coefficients.
    """
    m, n = b.shape
    alpha = b.new_full((m, n), 1.0 / n)                  # feasible start
    fixed = torch.zeros(m, n, dtype=torch.bool, device=b.device)
    at_high = torch.zeros_like(fixed)
    eye = torch.eye(n, dtype=b.dtype, device=b.device)
    lower, upper = b.new_tensor(low), b.new_tensor(high)
    kkt = b.new_zeros(m, n + 1, n + 1)
    kkt[:, n, :n] = 1.0
    rhs = b.new_ones(m, n + 1)
    max_iter = 20 * n + 20
    for _ in range(max_iter):
        # Equality QP: free rows G a + nu = b, fixed rows a_i = current bound, sum a = 1.
        kkt[:, :n, :n] = torch.where(fixed[:, :, None], eye, g)
        kkt[:, :n, n] = (~fixed).to(b.dtype)
        rhs[:, :n] = torch.where(fixed, alpha, b)
        solution = torch.linalg.solve(kkt, rhs)
        step = solution[:, :n] - alpha
        nu = solution[:, n:]
        moving = step.abs().amax(-1) > _STEP_TOL

        # Moving problems: go towards the solution, stop at the first bound met.
        room = torch.where(step > 0, (high - alpha) / step, (low - alpha) / step)
        room = torch.where(fixed | (step == 0), torch.inf, room).clamp_min(0.0)
        length, blocking = room.min(-1)
        # In exact arithmetic the last free coefficient never moves (sum a = 1); keep it free.
        blocked = moving & (length < 1.0) & ((~fixed).sum(-1) > 1)
        alpha = torch.where(moving[:, None], alpha + length.clamp_max(1.0)[:, None] * step, alpha)
        hit = torch.zeros_like(fixed).scatter_(1, blocking[:, None], blocked[:, None])
        hit_high = hit & (step > 0)
        alpha = torch.where(hit, torch.where(hit_high, upper, lower), alpha)
        fixed = fixed | hit
        at_high = torch.where(hit, hit_high, at_high)

        # Resting problems: release the bound with the most negative multiplier, if any.
        residual = alpha @ g - b + nu                     # G a - b + nu, per coordinate
        multiplier = torch.where(at_high, -residual, residual)
        multiplier = torch.where(fixed, multiplier, torch.inf)
        worst, release = multiplier.min(-1)
        releasing = ~moving & (worst < -_MULT_TOL)
        fixed = fixed & ~torch.zeros_like(fixed).scatter_(1, release[:, None], releasing[:, None])
        if not (moving | releasing).any():
            break
    else:
        log.warning("convex-hull active set stopped after %d iterations without converging; "
                    "using its last feasible iterate", max_iter)
    return alpha.clamp(low, high)


def _convex_cvxpy(a: torch.Tensor, z: torch.Tensor, ridge_abs: float, low: float,
                  high: float) -> torch.Tensor:
    """One cvxpy QP per feature (the reference solver), float64 (m, n)."""
    import cvxpy as cp
    import numpy as np

    a64 = a.detach().double().cpu().numpy()
    n, d = a64.shape
    alpha = cp.Variable(n)
    target = cp.Parameter(d)
    objective = cp.sum_squares(a64.T @ alpha - target) + ridge_abs * cp.sum_squares(alpha)
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(alpha) == 1, alpha >= low, alpha <= high])
    result = np.empty((z.shape[0], n))
    for i, row in enumerate(z.detach().double().cpu().numpy()):
        target.value = row
        problem.solve(solver=cp.CLARABEL)
        if problem.status != cp.OPTIMAL:
            raise RuntimeError(f"cvxpy could not solve the convex-hull QP for feature {i}: "
                               f"status {problem.status}")
        result[i] = alpha.value
    return torch.from_numpy(result).to(z.device)


def convex_coefficients(z: torch.Tensor, a: torch.Tensor, *,
                        bounds: tuple[float, float] = (0.0, 1.0), ridge: float = 1e-6,
                        solver: Solver = "torch") -> torch.Tensor:
    """Coefficients of each feature's nearest point in the (reduced) convex hull of ``a``'s rows.

    Solves ``min ||a^T alpha - z||^2`` s.t. ``sum(alpha) = 1``, ``lower <= alpha <= upper``, with
    the same relative ridge as :func:`affine_coefficients`.

    Args:
        z: protected features, shape (m, d).
        a: the person's clean features, shape (n, d).
        bounds: ``(lower, upper)`` on each coefficient; ``(0, 1)`` is the convex hull, tighter
            bounds (``lower <= 1/n <= upper``) a reduced hull.
        ridge: relative ridge (>= 0).
        solver: ``"torch"``, a batched exact active-set method (default, fast), or ``"cvxpy"``,
            one QP per feature with the CLARABEL solver (the reference).

    Returns:
        alpha, shape (m, n), dtype of ``z``, rows summing to 1 within the bounds; no gradient.
    """
    _check(z, a)
    if solver not in _SOLVERS:
        raise ValueError(f"unknown convex-hull solver {solver!r}; choose one of {_SOLVERS}")
    low, high = _check_bounds(bounds, a.shape[0])
    if solver == "cvxpy":
        return _convex_cvxpy(a, z, _absolute_ridge(a, ridge), low, high).to(z.dtype)
    return _convex_active_set(*_gram(z, a, ridge), low, high).to(z.dtype)


def subspace_coefficients(z: torch.Tensor, a: torch.Tensor, kind: Subspace, *,
                          bounds: tuple[float, float] = (0.0, 1.0), ridge: float = 1e-6,
                          solver: Solver = "torch") -> torch.Tensor:
    """Coefficients ``alpha`` (m, n) of each feature's nearest point in subspace ``kind``.

    ``"center"`` gives ``1/n`` everywhere; the keyword arguments are those of
    :func:`convex_coefficients` (``bounds`` and ``solver`` only matter for ``"convex"``).
    """
    _check(z, a)
    if kind == "center":
        return z.new_full((z.shape[0], a.shape[0]), 1.0 / a.shape[0])
    if kind == "affine":
        return affine_coefficients(z, a, ridge=ridge)
    if kind == "convex":
        return convex_coefficients(z, a, bounds=bounds, ridge=ridge, solver=solver)
    raise ValueError(f"unknown subspace {kind!r}; choose one of {SUBSPACES}")


def subspace_distance(z: torch.Tensor, a: torch.Tensor, kind: Subspace, *,
                      bounds: tuple[float, float] = (0.0, 1.0), ridge: float = 1e-6,
                      solver: Solver = "torch") -> torch.Tensor:
    """Squared distance of each protected feature to the person's subspace ``kind``.

    OPOM maximises the mean of this over a person's photos. ``alpha`` is solved without gradient
    (:func:`subspace_coefficients`) and held constant, so ``d/dz = 2 (z - a^T alpha)``.

    Args:
        z: protected features, shape (m, d), usually L2-normalised.
        a: the person's clean features, shape (n, d), usually L2-normalised; a constant.
        kind: ``"center"``, ``"affine"`` or ``"convex"``.
        bounds, ridge, solver: see :func:`convex_coefficients`.

    Returns:
        shape (m,), ``||z_i - a^T alpha_i||^2``, differentiable in ``z``.

    Shape:
        z (m, d), a (n, d) -> (m,)
    """
    if kind == "center":
        return center_distance(z, a)
    alpha = subspace_coefficients(z, a, kind, bounds=bounds, ridge=ridge, solver=solver)
    return _distance(z, a, alpha)

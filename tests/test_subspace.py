"""Subspace models: exact hand-made cases, the KKT solve against lstsq, the active set against
cvxpy on person-like feature sets, constant coefficients in the gradient, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cloak.subspace import (
    SUBSPACES,
    affine_coefficients,
    center_distance,
    convex_coefficients,
    subspace_coefficients,
    subspace_distance,
)

TRIANGLE = torch.eye(3, dtype=torch.float64)          # corners of the triangle x + y + z = 1, >= 0
SEGMENT = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)


def objective(z: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``||z - a^T alpha||^2`` per row, float64."""
    return (z.double() - alpha.double() @ a.double()).pow(2).sum(-1)


def person_features(seed: int, n: int, d: int, spread: float) -> torch.Tensor:
    """n L2-normalised features scattered around one random direction (like one person's photos).

    spread 0.8-1.6 gives pairwise cosines of about 0.7-0.3, the range recognizers give a person.
    """
    gen = torch.Generator().manual_seed(seed)
    centre = F.normalize(torch.randn(d, generator=gen, dtype=torch.float64), dim=0)
    noise = torch.randn(n, d, generator=gen, dtype=torch.float64) * spread / d**0.5
    return F.normalize(centre + noise, dim=1)


def realistic_problem(seed: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """a: 10 photos of a person; z: 4 held-out photos of them, 3 of others, 3 inside the hull."""
    same = person_features(seed, 14, d, spread=[0.8, 1.2, 1.6][seed % 3])
    others = person_features(seed + 1000, 3, d, spread=1.0)
    a = same[:10]
    gen = torch.Generator().manual_seed(seed)
    weights = -torch.rand(3, 10, generator=gen, dtype=torch.float64).log()   # Dirichlet(1, ..., 1)
    inside = (weights / weights.sum(1, keepdim=True)) @ a
    return torch.cat([same[10:], others, inside]), a


# ----------------------------------------------------------------------------------- hand cases


def test_center_distance_known():
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])      # mean (2/3, 2/3)
    z = torch.tensor([[2 / 3, 2 / 3], [2 / 3, 5 / 3], [-1 / 3, 2 / 3 + 2.0]])
    torch.testing.assert_close(center_distance(z, a), torch.tensor([0.0, 1.0, 5.0]))
    torch.testing.assert_close(subspace_distance(z, a, "center"), center_distance(z, a))


def test_segment_known():
    # Affine hull = the x axis, convex hull = [0, 1] on it, center = (0.5, 0).
    z = torch.tensor([[3.0, 2.0], [0.25, -1.0]], dtype=torch.float64)
    expected = {"center": [2.5**2 + 4.0, 0.0625 + 1.0], "affine": [4.0, 1.0],
                "convex": [2.0**2 + 4.0, 1.0]}
    for kind, values in expected.items():
        got = subspace_distance(z, SEGMENT, kind, ridge=0.0)
        torch.testing.assert_close(got, torch.tensor(values, dtype=torch.float64),
                                   atol=1e-12, rtol=0)
    alpha = affine_coefficients(z, SEGMENT, ridge=0.0)
    torch.testing.assert_close(alpha, torch.tensor([[-2.0, 3.0], [0.75, 0.25]],
                                                   dtype=torch.float64), atol=1e-12, rtol=0)
    alpha = convex_coefficients(z, SEGMENT, ridge=0.0)
    torch.testing.assert_close(alpha, torch.tensor([[0.0, 1.0], [0.75, 0.25]],
                                                   dtype=torch.float64), atol=1e-12, rtol=0)


def test_triangle_known():
    z = torch.tensor([[1.0, 1.0, 1.0],      # off the plane; projects to the centroid
                      [1.0, 1.0, -1.0],     # in the plane, outside the triangle
                      [0.2, 0.3, 0.5]],     # inside the triangle
                     dtype=torch.float64)
    affine = subspace_distance(z, TRIANGLE, "affine", ridge=0.0)
    convex = subspace_distance(z, TRIANGLE, "convex", ridge=0.0)
    torch.testing.assert_close(affine, torch.tensor([4 / 3, 0.0, 0.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(convex, torch.tensor([4 / 3, 1.5, 0.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)
    alpha = convex_coefficients(z, TRIANGLE, ridge=0.0)
    torch.testing.assert_close(alpha[1], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)


def test_reduced_hull_known():
    # alpha_1 <= 0.5 keeps e1 away from its own corner: nearest point (0.5, 0.25, 0.25).
    z = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    alpha = convex_coefficients(z, TRIANGLE, bounds=(0.0, 0.5), ridge=0.0)
    torch.testing.assert_close(alpha, torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64),
                               atol=1e-12, rtol=0)
    got = subspace_distance(z, TRIANGLE, "convex", bounds=(0.0, 0.5), ridge=0.0)
    torch.testing.assert_close(got, torch.tensor([0.375], dtype=torch.float64), atol=1e-12, rtol=0)
    # bounds (1/3, 1/3) leave only the centroid: the reduced hull becomes the class center.
    centre = subspace_distance(z, TRIANGLE, "convex", bounds=(1 / 3, 1 / 3), ridge=0.0)
    torch.testing.assert_close(centre, center_distance(z, TRIANGLE), atol=1e-12, rtol=0)


def test_inside_hull_is_zero():
    z, a = realistic_problem(0, 128)
    inside = z[-3:]
    for kind in ("affine", "convex"):
        assert subspace_distance(inside, a, kind).max() < 1e-9
    assert center_distance(inside, a).min() > 1e-3


def test_exception():
    z, a = torch.zeros(2, 4), torch.eye(4)
    with pytest.raises(ValueError, match="unknown subspace"):
        subspace_distance(z, a, "sphere")
    with pytest.raises(ValueError, match="unknown convex-hull solver"):
        subspace_distance(z, a, "convex", solver="scipy")
    with pytest.raises(ValueError, match="admit no alpha"):
        convex_coefficients(z, a, bounds=(0.0, 0.2))           # 4 * 0.2 < 1
    with pytest.raises(ValueError, match="admit no alpha"):
        convex_coefficients(z, a, bounds=(0.3, 1.0))           # 4 * 0.3 > 1
    with pytest.raises(ValueError, match="dims"):
        subspace_distance(torch.zeros(2, 3), a, "affine")
    with pytest.raises(ValueError, match="expected z"):
        subspace_distance(torch.zeros(4), a, "center")
    with pytest.raises(ValueError, match="ridge"):
        affine_coefficients(z, a, ridge=-1.0)


# ----------------------------------------------------------------------- solvers vs references


@pytest.mark.parametrize("d", [128, 512])
def test_affine_matches_lstsq(d):
    # Eliminate the constraint: alpha_n = 1 - sum(beta), a^T alpha = a_n + D beta, D = a_i - a_n.
    z, a = realistic_problem(1, d)
    zn, an = z.numpy(), a.numpy()
    diffs = (an[:-1] - an[-1]).T
    beta = np.linalg.lstsq(diffs, (zn - an[-1]).T, rcond=None)[0].T
    expected = torch.from_numpy(np.concatenate([beta, 1 - beta.sum(1, keepdims=True)], axis=1))
    torch.testing.assert_close(affine_coefficients(z, a, ridge=0.0), expected, atol=1e-8, rtol=0)
    distance = objective(z, a, expected)
    torch.testing.assert_close(subspace_distance(z, a, "affine", ridge=0.0), distance,
                               atol=1e-10, rtol=0)
    # The default ridge moves the distance by less than 1e-6 * ||alpha||^2.
    torch.testing.assert_close(subspace_distance(z, a, "affine"), distance, atol=1e-5, rtol=0)


@pytest.mark.parametrize("d", [128, 512])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.05, 0.3)])
def test_convex_matches_cvxpy(d, bounds):
    for seed in range(3):
        z, a = realistic_problem(seed, d)
        z32, a32 = z.float(), a.float()
        fast = convex_coefficients(z32, a32, bounds=bounds)
        reference = convex_coefficients(z32, a32, bounds=bounds, solver="cvxpy")
        assert fast.dtype == torch.float32
        torch.testing.assert_close(fast.sum(-1), torch.ones(len(z)), atol=1e-6, rtol=0)
        assert fast.min() >= bounds[0] and fast.max() <= bounds[1]
        gap = objective(z32, a32, fast) - objective(z32, a32, reference)
        assert gap.abs().max() < 1e-4, f"objective gap {gap.abs().max():.2e}"
        assert gap.max() < 1e-6, "the active set must be at least as good as cvxpy"
        assert (fast - reference).abs().max() < 1e-3   # measured about 4e-5 (cvxpy's tolerance)


def test_convex_degenerate_matches_cvxpy():
    # n > d + 1 (affinely dependent) plus a duplicated photo: only the ridge keeps G invertible.
    a = person_features(7, 10, 4, spread=1.0)
    a[3] = a[2]
    z = torch.cat([person_features(8, 4, 4, spread=1.0), 3 * a[:2]])
    fast = convex_coefficients(z, a)
    reference = convex_coefficients(z, a, solver="cvxpy")
    gap = objective(z, a, fast) - objective(z, a, reference)
    assert gap.abs().max() < 1e-6


@pytest.mark.parametrize("kind", SUBSPACES)
def test_ordering(kind):
    # center in convex hull in affine hull: the distances can only shrink along that chain.
    z, a = realistic_problem(2, 128)
    center, affine = center_distance(z, a), subspace_distance(z, a, "affine")
    convex = subspace_distance(z, a, "convex")
    assert (center >= convex - 1e-9).all() and (convex >= affine - 1e-9).all()
    assert (subspace_distance(z, a, kind) >= 0).all()


# ------------------------------------------------------------------------- gradient, batching


@pytest.mark.parametrize("kind", SUBSPACES)
def test_gradient_is_residual(kind):
    z, a = realistic_problem(3, 128)
    z = z.clone().requires_grad_(True)
    a = a.clone().requires_grad_(True)
    subspace_distance(z, a, kind).sum().backward()
    alpha = subspace_coefficients(z, a, kind)
    assert not alpha.requires_grad
    expected = 2 * (z.detach() - alpha @ a.detach())
    torch.testing.assert_close(z.grad, expected, atol=1e-12, rtol=0)
    assert a.grad is None


@pytest.mark.parametrize("kind", SUBSPACES)
def test_batched_equals_one_by_one(kind):
    z, a = realistic_problem(4, 512)
    batched = subspace_distance(z, a, kind, bounds=(0.02, 0.5))
    single = torch.cat([subspace_distance(row[None], a, kind, bounds=(0.02, 0.5)) for row in z])
    torch.testing.assert_close(batched, single, atol=1e-10, rtol=0)


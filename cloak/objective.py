"""The terms of the OPOM objective beyond the subspace distance, and how they are combined.

Each term is a plain function of one surrogate's protected features ``z`` (N, d), L2-normalised,
that the mask maximises:

- :func:`subspace_term`: OPOM's mean squared distance of each protected feature to the person's
  clean feature subspace (:func:`cloak.subspace.subspace_distance`);
- :func:`linkage_term`: anti-linkage, ``(1/N) log det(Z Z^T + r I)``, the log-determinant of the
  Gram matrix of the protected features of the person's training photos (Protego, Wang et al.,
  CVPR 2026, "hypersensitivity"): 0 when they are orthogonal, very negative when they agree, so
  maximising it pushes the protected photos of the person apart from EACH OTHER, most strongly
  the pairs that are most alike (the ones a face search would link first);
- :func:`anchor_term`: a targeted pull, the mean cosine of the protected features to a stranger's
  clean features (TIP-IM, FaceCloak): it gives the mask one reachable direction instead of "away".

:func:`feature_gradient` combines them for one surrogate in feature space: each term's gradient
with respect to ``z`` is scaled to the Frobenius norm of the subspace term's gradient and
weighted, ``v = v_sub + w_link * |v_sub| v_link / |v_link| + w_anchor * |v_sub| v_anc / |v_anc|``,
so a weight of 1 means "as much as the subspace term" whatever the terms' natural scales; ``v``
is then carried back through the surrogate once (one backward), and the surrogate's pixel
gradient is balanced against the other members (:mod:`cloak.opom.learn`). With every weight 0,
``v`` is the subspace term's gradient exactly (OPOM's objective alone).

>>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
>>> round(float(linkage_term(torch.eye(4, 8))), 6)       # orthonormal features
0.0
>>> bool(linkage_term(torch.stack([z[0]] * 4)) < -5)        # identical features
True
"""

from __future__ import annotations

import torch

from cloak.subspace import Subspace, subspace_distance

__all__ = ["LINKAGE_RIDGE", "anchor_term", "feature_gradient", "linkage_term", "rescaled",
           "subspace_term"]

#: Ridge ``r`` added to the Gram matrix before its log-determinant (keeps it finite when two
#: protected features coincide; log(r) = -9.2 bounds each eigenvalue's contribution).
LINKAGE_RIDGE = 1e-4
_TINY = 1e-12


def subspace_term(z: torch.Tensor, clean: torch.Tensor, kind: Subspace) -> torch.Tensor:
    """OPOM's objective: mean squared distance of ``z`` to the subspace of ``clean``.

    Args:
        z: (N, d) protected features, L2-normalised.
        clean: (n, d) the person's clean features (a constant).
        kind: ``"center"``, ``"affine"`` or ``"convex"``.

    Returns:
        scalar in [0, 4], differentiable in ``z``.
    """
    return subspace_distance(z, clean, kind).mean()


def linkage_term(z: torch.Tensor, ridge: float = LINKAGE_RIDGE) -> torch.Tensor:
    """Anti-linkage: ``(1/N) log det(Z Z^T + ridge I)`` of the protected features.

    For L2-normalised rows the Gram matrix has unit diagonal, so its determinant is at most 1
    (Hadamard), reached when the rows are orthogonal: the term is at most ``log(1 + ridge)``
    (about 0) and falls as the features of the person's photos become alike.

    Args:
        z: (N, d) protected features of N >= 2 photos of one person, L2-normalised.
        ridge: added to the diagonal (> 0).

    Returns:
        scalar <= log(1 + ridge), differentiable in ``z``.

    Raises:
        ValueError: fewer than 2 features (no pair to push apart) or ridge <= 0.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"linkage needs (N >= 2, d) features, got {tuple(z.shape)}")
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    gram = z.double() @ z.double().T
    eye = torch.eye(len(z), dtype=torch.float64, device=z.device)
    return (torch.logdet(gram + ridge * eye) / len(z)).to(z.dtype)


def anchor_term(z: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Targeted pull: mean cosine similarity of the protected features to an anchor identity.

    Args:
        z: (N, d) protected features, L2-normalised.
        anchor: (d,) L2-normalised clean feature of a stranger (a constant).

    Returns:
        scalar in [-1, 1], differentiable in ``z``.
    """
    if anchor.shape != z.shape[1:]:
        raise ValueError(f"anchor {tuple(anchor.shape)} does not fit features {tuple(z.shape)}")
    return (z @ anchor.to(z)).mean()


def rescaled(grad: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """``grad`` scaled to Frobenius norm ``norm`` (how :func:`feature_gradient` weighs an extra
    term against the subspace term's gradient)."""
    return grad * (norm / grad.norm().clamp_min(_TINY))


def feature_gradient(z: torch.Tensor, clean: torch.Tensor, kind: Subspace, *,
                     linkage: float = 0.0, anchor: torch.Tensor | None = None,
                     anchor_weight: float = 0.0) -> tuple[torch.Tensor, float]:
    """Gradient of one surrogate's combined objective with respect to its protected features.

    Args:
        z: (N, d) protected features (their graph is not used: a detached copy is derived).
        clean: (n, d) the person's clean features.
        kind: subspace model of :func:`subspace_term`.
        linkage: weight of :func:`linkage_term` (0 = off; ignored when N < 2).
        anchor: (d,) anchor feature for :func:`anchor_term`, or None.
        anchor_weight: its weight (0 = off).

    Returns:
        (v, subspace objective): ``v`` (N, d) as in the module docstring, and the value of
        :func:`subspace_term` (for progress reports).
    """
    leaf = z.detach().requires_grad_(True)
    with torch.enable_grad():
        value = subspace_term(leaf, clean, kind)
        (v,) = torch.autograd.grad(value, leaf)
        extra = []
        if linkage > 0 and len(z) >= 2:
            extra.append((linkage, linkage_term(leaf)))
        if anchor is not None and anchor_weight > 0:
            extra.append((anchor_weight, anchor_term(leaf, anchor)))
        if extra:
            norm = v.norm()
            for weight, term in extra:
                (g,) = torch.autograd.grad(term, leaf)
                v = v + weight * rescaled(g, norm)
    return v, float(value.detach())

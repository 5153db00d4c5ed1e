"""Checks shared by the recognizer tests: pair similarities and where gradients reach."""

from __future__ import annotations

__all__ = ["assert_gradients_in_centred_crop", "pair_similarities"]


def pair_similarities(emb, labels) -> tuple:
    """Cosine similarities of every unordered same-person and different-person pair.

    Args:
        emb: (N, D) L2-normalised embeddings.
        labels: (N,) int person labels.

    Returns:
        (same, different): 1-D tensors of pair similarities.
    """
    sim = emb @ emb.T
    same = labels[:, None] == labels[None]
    upper = sim.new_ones(sim.shape, dtype=bool).triu(1)
    return sim[same & upper], sim[~same & upper]


def assert_gradients_in_centred_crop(model, frames) -> None:
    """Gradients of a similarity reach the frame's centre and not its corner (an ArcFace-112
    crop covers the centre, not the corners).

    Args:
        model: a white-box recognizer.
        frames: (N >= 3, 3, FRAME_SIZE, FRAME_SIZE) canonical frames in [0, 255].
    """
    import torch

    from attackers.frame import FRAME_SIZE

    inputs = frames[:2].clone().requires_grad_(True)
    target = model.embed(frames[-1:]).detach()
    (model.embed(inputs) @ target.T).sum().backward()
    grad = inputs.grad
    assert grad is not None and torch.isfinite(grad).all()
    mid = slice(FRAME_SIZE // 2 - 20, FRAME_SIZE // 2 + 20)
    assert (grad[:, :, mid, mid] != 0).float().mean() > 0.9
    assert grad[:, :, :4, :4].abs().max() == 0

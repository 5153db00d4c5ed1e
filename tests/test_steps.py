"""The pieces of a sign-gradient mask update (random start, projection, FIM step, MI, TI, DI)
on known tensors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cloak.steps import (
    InputDiversity,
    Momentum,
    PhotoTurns,
    TranslationInvariance,
    fim_step,
    input_diversity,
    momentum_update,
    project,
    random_start,
    translation_invariance,
)

EPS = 8.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_start_seeded_and_uniform():
    a, b = random_start((3, 64, 64), EPS, gen(1)), random_start((3, 64, 64), EPS, gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_start((3, 64, 64), EPS, gen(2)))
    assert a.abs().max() <= EPS
    assert abs(a.abs().mean().item() - EPS / 2) < 0.1         # U[-8, 8]: mean |x| = 4
    assert abs(a.mean().item()) < 0.1


def test_project_clamps_and_detaches():
    delta = torch.tensor([-20.0, -8.0, -3.5, 0.0, 7.9, 9.0], requires_grad=True)
    out = project(delta * 1.0, EPS)
    assert out.tolist() == [-8.0, -8.0, -3.5, 0.0, pytest.approx(7.9), 8.0]
    assert not out.requires_grad
    with pytest.raises(ValueError, match="eps"):
        project(delta, 0.0)


def test_fim_step_is_a_projected_sign_step():
    delta = torch.tensor([0.0, 7.5, -7.5, 2.0, 3.0])
    grad = torch.tensor([0.3, 1e-9, -5.0, -2.0, 0.0])
    out = fim_step(delta, grad, step_size=1.0, eps=EPS)
    assert out.tolist() == [1.0, 8.0, -8.0, 1.0, 3.0]    # sign only; clipped; zero grad stays
    with pytest.raises(ValueError, match="shape"):
        fim_step(delta, grad[:3], 1.0, EPS)


def test_momentum_normalises_and_accumulates():
    g1 = torch.tensor([4.0, -2.0, 0.0, 2.0])              # mean |g1| = 2
    g2 = torch.tensor([1.0, 1.0, 1.0, -1.0])              # mean |g2| = 1
    m1 = momentum_update(torch.zeros(4), g1, mu=0.5)
    torch.testing.assert_close(m1, g1 / 2)
    assert m1.abs().mean().item() == pytest.approx(1.0)
    m2 = momentum_update(m1, g2, mu=0.5)
    torch.testing.assert_close(m2, 0.5 * g1 / 2 + g2)
    state = Momentum(0.5)
    state(g1)
    torch.testing.assert_close(state(g2), m2)             # module and function agree
    assert torch.equal(momentum_update(torch.zeros(4), torch.zeros(4), 1.0), torch.zeros(4))
    with pytest.raises(ValueError, match="mu"):
        Momentum(-1.0)


def test_translation_invariance_is_a_gaussian_blur():
    impulse = torch.zeros(3, 32, 32)
    impulse[:, 16, 16] = 1.0
    out = translation_invariance(impulse, 7)
    assert out.shape == impulse.shape
    assert out.sum().item() == pytest.approx(3.0, abs=1e-5)          # mass kept in the interior
    assert out[0, 16, 16] < 1.0 and out[0, 16, 16] == out[0].max()   # peak spread, centred
    assert out[0, 16, 19] > 0 and out[0, 16, 20] == 0                # 7 wide: radius 3
    torch.testing.assert_close(out[0], out[0].T)                     # isotropic
    flat = torch.full((2, 3, 16, 16), 2.5)
    torch.testing.assert_close(translation_invariance(flat, 5), flat)
    assert translation_invariance(impulse, 0) is impulse             # 0 = off
    torch.testing.assert_close(TranslationInvariance(7)(impulse), out)
    with pytest.raises(ValueError, match="odd"):
        translation_invariance(impulse, 4)


def test_input_diversity_is_seeded():
    images = torch.rand(6, 3, 64, 64, generator=gen(0)) * 255
    a = input_diversity(images, 0.5, gen(1))
    b = input_diversity(images, 0.5, gen(1))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, input_diversity(images, 0.5, gen(2)))
    changed = [(a[i] - images[i]).abs().max().item() > 1.0 for i in range(6)]
    assert 0 < sum(changed) < 6                      # some images moved, some passed unchanged
    assert torch.equal(input_diversity(images, 0.0, gen(1)), images)
    moved = input_diversity(images, 1.0, gen(1))
    assert all((moved[i] - images[i]).abs().max().item() > 1.0 for i in range(6))
    assert all(torch.equal(moved[i], a[i]) for i in range(6) if changed[i])  # same draws
    torch.testing.assert_close(InputDiversity(0.5, gen(1))(images), a)
    x = images.clone().requires_grad_(True)
    input_diversity(x, 1.0, gen(1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="probability"):
        input_diversity(images, 1.5, gen(1))


@given(n=st.integers(1, 12), per_step=st.integers(0, 14), steps=st.integers(1, 30),
       seed=st.integers(0, 2**31 - 1))
def test_photo_turns_see_every_photo_equally(n: int, per_step: int, steps: int, seed: int):
    """Each step takes min(per_step, n) distinct photos (all n with 0 or per_step >= n); after
    any number of steps no photo has been seen more than once more than any other."""
    turns = PhotoTurns(n, per_step, gen(seed))
    counts = [0] * n
    for _ in range(steps):
        chosen = turns.next()
        assert len(set(chosen)) == len(chosen) == (per_step if 0 < per_step < n else n)
        assert all(0 <= i < n for i in chosen)
        for i in chosen:
            counts[i] += 1
        assert max(counts) - min(counts) <= 1


def test_photo_turns_seeded_and_checked():
    assert [PhotoTurns(10, 5, gen(3)).next() for _ in range(2)] == \
        [PhotoTurns(10, 5, gen(3)).next() for _ in range(2)]
    untouched = gen(4)
    PhotoTurns(10, 0, untouched).next()                      # all photos: no draw
    assert torch.equal(untouched.get_state(), gen(4).get_state())
    with pytest.raises(ValueError, match="per_step"):
        PhotoTurns(3, -1, gen())

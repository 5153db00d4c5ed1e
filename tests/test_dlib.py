"""dlib-resnet (torch port of dlib's face descriptor) against dlib-native (dlib-bin), on LFW."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attackers
from attackers import zoo
from attackers.convert.dlib_dat import DlibFormatError, LayerSpec, Reader, read_stack
from attackers.frame import warp_to_crop
from attackers.recognizers.dlib_native import to_uint8_chips
from attackers.recognizers.dlib_resnet import DLIB_CROP, add_padded, anet_stack, convert


@pytest.fixture(scope="module")
def native():
    return attackers.load("dlib-native")


@pytest.fixture(scope="module")
def dat_path():
    return zoo.fetch("dlib-resnet")["weights"]


@pytest.mark.data
def test_smoke(dlib, native):
    assert (dlib.name, dlib.dim, dlib.crop, dlib.differentiable) == (
        "dlib-resnet", 128, DLIB_CROP, True)
    assert (native.name, native.dim, native.crop, native.differentiable) == (
        "dlib-native", 128, DLIB_CROP, False)
    assert not any(p.requires_grad for p in dlib.parameters())
    assert len(anet_stack()) == 132


@pytest.mark.data
def test_reader_primitives(dat_path):
    # The file opens with add_loss_layer's version, loss_metric_'s version string, its margin
    # (0.04) and distance threshold (0.6), then add_layer version 2 of fc_no_bias.
    r = Reader(dat_path.read_bytes()[:64], str(dat_path))
    assert r.read_int() == 1
    assert r.read_string() == "loss_metric_2"
    assert r.read_float() == pytest.approx(0.04, abs=1e-7)
    assert r.read_float() == pytest.approx(0.6, abs=1e-7)
    assert r.read_int() == 2
    assert Reader(b"\x81\x05", "x").read_int() == -5
    assert Reader(b"\x02\x80\x12", "x").read_int() == 0x1280


@pytest.mark.data
def test_exception(dat_path, native, tmp_path):
    stack = anet_stack()
    wrong_width = [LayerSpec("con", 64, 7, 2) if s == LayerSpec("con", 32, 7, 2) else s
                   for s in stack]
    with pytest.raises(DlibFormatError, match=r"num_filters is 32, expected 64"):
        read_stack(dat_path, wrong_width)
    with pytest.raises(DlibFormatError, match=r"\(tag\)\): unexpected version 2, expected 1"):
        read_stack(dat_path, stack[:3] + stack[14:])  # alevel0 missing
    cut = tmp_path / "cut.dat"
    cut.write_bytes(dat_path.read_bytes()[:-1000])
    with pytest.raises(DlibFormatError, match=r"cut\.dat: byte \d+ .*truncated"):
        read_stack(cut, stack)
    padded = tmp_path / "padded.dat"
    padded.write_bytes(dat_path.read_bytes() + b"\x00")
    with pytest.raises(DlibFormatError, match=r"1 unread bytes"):
        read_stack(padded, stack)
    with pytest.raises(ValueError, match=r"\(N, 3, 150, 150\)"):
        native.forward_crop(torch.zeros(1, 3, 112, 112))


@pytest.mark.data
def test_converted_cache(dat_path, dlib):
    cached = zoo.converted_path("dlib-resnet", "v1")
    assert cached.is_file()
    fresh = convert(dat_path)
    state = dlib.state_dict()
    assert fresh.keys() == state.keys()
    assert all(torch.equal(fresh[k], state[k]) for k in fresh)
    assert torch.allclose(state["input_mean"], torch.tensor([122.782, 117.001, 104.298]))


def test_add_padded():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 2.0)
    out = add_padded(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(3).all() and out[0, 0, 3].eq(2).all()
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3].eq(0).all()


def test_module_matches_native(dlib, native, lfw_faces):
    """The issue's acceptance: mean L2 between unit embeddings < 0.05 (we expect ~1e-6)."""
    x, _ = lfw_faces
    crops = warp_to_crop(x, DLIB_CROP)
    rounded = torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in to_uint8_chips(crops)])
    with torch.no_grad():
        ours = F.normalize(dlib.forward_crop(rounded.float()), dim=1)
    theirs = F.normalize(native.forward_crop(crops), dim=1)
    dist = (ours - theirs).norm(dim=1)
    assert dist.mean() < 0.05
    assert dist.max() < 1e-4  # measured 8e-7: the port is exact up to float rounding
    # Through embed() the port sees unrounded pixels; uint8 rounding alone moves it ~3e-3.
    with torch.no_grad():
        dist_embed = (dlib.embed(x) - native.embed(x)).norm(dim=1)
    assert dist_embed.max() < 0.02


def test_gradients_reach_pixels(dlib, lfw_faces):
    x = lfw_faces[0][:2].clone().requires_grad_(True)
    emb = dlib.embed(x)
    (emb[0] @ emb[1].detach()).backward()
    grad = x.grad[0]
    assert torch.isfinite(x.grad).all()
    # the 150 chip at scale 1.18 covers about (0.7 / 1.18)^2 = 35% of the frame
    assert 0.25 < (grad.abs() > 0).float().mean() < 0.45
    assert x.grad[1].abs().sum() == 0  # the second face was detached


def test_same_person_scores_higher(dlib, lfw_faces):
    x, labels = lfw_faces
    with torch.no_grad():
        emb = dlib.embed(x)
    sim = emb @ emb.T
    same = labels[:, None] == labels[None]
    off_diag = ~torch.eye(len(x), dtype=torch.bool)
    pos, neg = sim[same & off_diag], sim[~same]
    auc = (pos[:, None] > neg[None]).float().mean()
    assert pos.mean() > neg.mean() + 0.03  # measured 0.953 vs 0.893
    assert auc > 0.9
    for person in labels.unique():
        mine = labels == person
        assert sim[mine][:, mine][off_diag[mine][:, mine]].mean() > sim[mine][:, ~mine].mean()

"""Mask files: round trip, the exact safetensors layout, and one clear MaskError per bad file."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from attackers.frame import FRAME_SCALE, FRAME_SIZE
from cloak.mask import FORMAT_VERSION, MASK_SUFFIX, Mask, MaskError, load_mask, save_mask

SHAPE = (3, FRAME_SIZE, FRAME_SIZE)


def make_mask(eps: float = 8.0) -> Mask:
    gen = torch.Generator().manual_seed(0)
    delta = (torch.rand(SHAPE, generator=gen) * 2 - 1) * eps
    delta[0, 0, 0], delta[1, 0, 0] = eps, -eps                 # the bound itself is allowed
    return Mask(delta=delta, eps=eps, subspace="convex", surrogates=["facenet", "sface"],
                person="Ariel_Sharon", seed=7,
                settings={"steps": 16, "mode": "fim", "step_size": 1.0})


def raw_metadata(**metadata) -> dict[str, str]:
    """save_mask's metadata header, JSON-encoded, with entries overridden (None: left out)."""
    header = {"format": "cloak-mask", "format_version": FORMAT_VERSION, "eps": 8.0,
              "subspace": "convex", "surrogates": ["facenet"], "person": "x", "seed": 0,
              "frame_size": FRAME_SIZE, "frame_scale": FRAME_SCALE, "version": "0.1.0",
              "settings": {}, "created": "2024-01-01T00:00:00+00:00"}
    header.update(metadata)
    return {k: json.dumps(v) for k, v in header.items() if v is not None}


def write_raw(path, tensors=None, **metadata):
    """A safetensors file like save_mask's, with tensors and metadata entries overridden."""
    save_file(tensors if tensors is not None else {"delta": torch.zeros(SHAPE)}, path,
              metadata=raw_metadata(**metadata))


def test_round_trip(tmp_path):
    mask = make_mask()
    path = save_mask(mask, tmp_path / f"ariel{MASK_SUFFIX}")
    loaded = load_mask(path)
    assert torch.equal(loaded.delta, mask.delta) and loaded.delta.dtype == torch.float32
    for name in ("eps", "subspace", "surrogates", "person", "seed", "frame_size", "frame_scale",
                 "version", "settings", "created"):
        assert getattr(loaded, name) == getattr(mask, name), name
    assert os.listdir(tmp_path) == [path.name]                  # no temporary file left behind
    mask.delta = -mask.delta
    save_mask(mask, path)                                       # replaces the existing file
    assert torch.equal(load_mask(path).delta, mask.delta)


def test_layout_is_plain_safetensors(tmp_path):
    """8-byte header length, a JSON header, then exactly the raw float32 delta: no pickle."""
    mask = make_mask()
    data = save_mask(mask, tmp_path / "m.cloak").read_bytes()
    assert not data.startswith((b"\x80", b"PK\x03\x04"))     # pickle protocol / torch.save zip
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    assert set(header) == {"__metadata__", "delta"}            # one tensor, no embeddings
    nbytes = 3 * FRAME_SIZE * FRAME_SIZE * 4
    assert header["delta"] == {"dtype": "F32", "shape": list(SHAPE), "data_offsets": [0, nbytes]}
    assert data[8 + size:] == mask.delta.numpy().tobytes()
    metadata = {k: json.loads(v) for k, v in header["__metadata__"].items()}
    assert metadata["format"] == "cloak-mask" and metadata["eps"] == 8.0
    assert metadata["surrogates"] == ["facenet", "sface"] and metadata["settings"]["steps"] == 16


def test_save_refuses_invalid(tmp_path):
    path = tmp_path / "bad.cloak"
    mask = make_mask()
    mask.delta = mask.delta * 1.01
    with pytest.raises(MaskError, match=r"bad\.cloak: not saved: delta reaches 8\.08"):
        save_mask(mask, path)
    mask = make_mask()
    mask.subspace = "sphere"
    with pytest.raises(MaskError, match="unknown subspace"):
        save_mask(mask, path)
    assert not path.exists()
    with pytest.raises(MaskError, match="cannot write"):
        save_mask(make_mask(), tmp_path / "missing-dir" / "m.cloak")


class _Trap:
    """Unpickling this creates a directory: proof that load_mask never unpickles."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _saved_then(change):
    def build(path):
        save_mask(make_mask(), path)
        change(path)
    return build


BAD_FILES = {
    "missing": (lambda p: None, "no such file"),
    "directory": (lambda p: p.mkdir(), r"not a regular file \(a folder\)"),
    "fifo": (lambda p: os.mkfifo(p), r"not a regular file \(a named pipe\)"),
    "empty": (lambda p: p.write_bytes(b""), "too short"),
    "truncated": (_saved_then(lambda p: p.write_bytes(p.read_bytes()[:300_000])),
                  "not a valid safetensors mask file"),
    "header-cut": (_saved_then(lambda p: p.write_bytes(p.read_bytes()[:100])),
                   "not a valid safetensors mask file"),
    "text": (lambda p: p.write_text("delta = 0\n" * 20), "not a valid safetensors mask file"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps(_Trap(p.parent / "trap"))),
               "a pickle file"),
    "torch-save": (lambda p: torch.save({"delta": torch.zeros(SHAPE)}, p), "a zip archive"),
    "other-safetensors": (lambda p: save_file({"delta": torch.zeros(SHAPE)}, p),
                          "not a cloak mask"),
    "wrong-shape": (lambda p: write_raw(p, {"delta": torch.zeros(3, 112, 112)}),
                    r"shape \(3, 112, 112\), expected \(3, 224, 224\)"),
    "wrong-dtype": (lambda p: write_raw(p, {"delta": torch.zeros(SHAPE, dtype=torch.float16)}),
                    "dtype float16, expected float32"),
    "out-of-range": (lambda p: write_raw(p, {"delta": torch.full(SHAPE, 9.0)}),
                     "delta reaches 9 pixel levels, beyond its eps of 8"),
    "nan": (lambda p: write_raw(p, {"delta": torch.full(SHAPE, float("nan"))}), "NaN"),
    "wrong-frame": (lambda p: write_raw(p, frame_size=256, frame_scale=0.8),
                    "mask made for a 256 frame at scale 0.8, this version uses a 224 frame at "
                    "scale 0.7"),
    "embedding-inside": (lambda p: write_raw(p, {"delta": torch.zeros(SHAPE),
                                                 "features": torch.zeros(10, 512)}),
                         r"exactly one tensor 'delta', found \['delta', 'features'\]"),
    "future-format": (lambda p: write_raw(p, format_version=FORMAT_VERSION + 1),
                      "format version 2 is unknown"),
    "missing-key": (lambda p: write_raw(p, eps=None), "metadata lacks 'eps'"),
    "bad-settings": (lambda p: write_raw(p, settings={"steps": [1, 2]}), "settings must map"),
}


@pytest.mark.timeout(60)  # a FIFO that were opened would block forever
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_errors(tmp_path, case):
    build, reason = BAD_FILES[case]
    path = tmp_path / f"{case}.cloak"
    build(path)
    with pytest.raises(MaskError, match=reason) as caught:
        load_mask(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert not (tmp_path / "trap").exists()


def test_bad_metadata_json(tmp_path):
    path = tmp_path / "json.cloak"
    metadata = raw_metadata()
    metadata["eps"] = "eight"
    save_file({"delta": torch.zeros(SHAPE)}, path, metadata=metadata)
    with pytest.raises(MaskError, match="metadata 'eps' is not valid JSON"):
        load_mask(path)


def _header_length(path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("header_length", [640, 896, 1152, 1408])
def test_masks_whose_header_length_looks_like_pickle_still_load(tmp_path, header_length):
    """Issue 12: a safetensors header length of 640, 896, 1152 or 1408 bytes starts the file
    with 0x80 0x02..0x05, pickle's marker; such masks were written and then refused. The
    person's name is lengthened until the header has exactly that length (safetensors pads it
    to a multiple of 8, so each length is reached)."""
    def saved(name_length: int):
        mask = Mask(torch.zeros(SHAPE), eps=8.0, subspace="convex", surrogates=["facenet"],
                    person="p" * name_length, seed=0)
        return save_mask(mask, tmp_path / "m.cloak")

    name_length = max(1, header_length - _header_length(saved(1)) - 8)
    while _header_length(saved(name_length)) < header_length:
        name_length += 1
    path = saved(name_length)
    assert _header_length(path) == header_length
    assert path.read_bytes()[:2] == bytes([0x80, header_length // 256])  # pickle's marker
    assert load_mask(path).person == "p" * name_length


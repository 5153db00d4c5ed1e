"""The converted-weights cache (attackers.convert.cache), with a stand-in conversion."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from attackers import zoo
from attackers.convert.cache import load_converted


def test_written_once_reused_and_replaced(tmp_path, monkeypatch):
    cached = tmp_path / "converted" / "facenet-v1.safetensors"
    monkeypatch.setattr(zoo, "converted_path", lambda name, tag: cached)
    calls: list[Path] = []

    def convert(source: Path) -> dict[str, torch.Tensor]:
        calls.append(source)
        return {"w": torch.arange(6.0).reshape(2, 3)}

    source = tmp_path / "weights.h5"
    first = load_converted("facenet", "v1", source, convert)
    assert calls == [source] and cached.is_file()
    with safe_open(cached, framework="pt") as fh:
        assert fh.metadata() == {"source": "weights.h5",
                                 "source_sha256": zoo.weights_digests("facenet")["weights"]}
    again = load_converted("facenet", "v1", source, convert)
    assert len(calls) == 1 and torch.equal(again["w"], first["w"])
    save_file({"w": torch.zeros(1)}, cached, metadata={"source_sha256": "stale"})
    assert torch.equal(load_converted("facenet", "v1", source, convert)["w"], first["w"])
    cached.write_bytes(b"truncated")
    assert torch.equal(load_converted("facenet", "v1", source, convert)["w"], first["w"])
    assert len(calls) == 3
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]  # no partial files

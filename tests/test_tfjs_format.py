"""The TF.js graph-model format (attackers.convert.tfjs_format): weight shards decoded strictly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attackers.convert.tfjs_format import TFJSFormatError, decode_weights


def test_decode_weights():
    """float32 / int32 read as is; float16 upcast exactly; uint8 through scale and min."""
    half = np.array([0.1, -2.5, 65504.0], dtype=np.float16)
    data = (np.array([1.5, -3.0], np.float32).tobytes() + np.array([7], np.int32).tobytes()
            + half.tobytes() + np.array([0, 2, 255], np.uint8).tobytes())
    specs = [
        {"name": "f", "shape": [2], "dtype": "float32"},
        {"name": "i", "shape": [], "dtype": "int32"},
        {"name": "h", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "q", "shape": [1, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
    ]
    out = decode_weights(specs, data, "test.json")
    assert out["f"].tolist() == [1.5, -3.0] and out["i"].dtype == torch.int32
    assert out["h"].dtype == torch.float32 and out["h"].tolist() == half.astype(np.float32).tolist()
    assert out["q"].tolist() == [[-1.0, 0.0, 126.5]]
    with pytest.raises(TFJSFormatError, match="test.json: manifest describes 21 bytes"):
        decode_weights(specs, data + b"\0", "test.json")
    with pytest.raises(TFJSFormatError, match="unsupported dtype 'string'"):
        decode_weights([{"name": "s", "shape": [1], "dtype": "string"}], data, "t")

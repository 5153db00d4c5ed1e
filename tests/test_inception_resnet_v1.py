"""FaceNet's Inception-ResNet-v1 trunk (attackers.recognizers.inception_resnet_v1)."""

from __future__ import annotations

import torch

from attackers.recognizers.inception_resnet_v1 import Conv, InceptionResnetV1, Residual


def test_smoke():
    model = InceptionResnetV1().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 160, 160))
    assert out.shape == (2, 128)
    names = [m.keras_name for m in model.modules() if isinstance(m, Conv)]
    assert len(names) == len(set(names)) and names[0] == "Conv2d_1a_3x3"
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(blocks) == 5 + 10 + 6
    assert (blocks[-1].scale, blocks[-1].relu) == (1.0, False)
    assert model.last_linear.keras_name == "Bottleneck"

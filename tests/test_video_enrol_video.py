"""``cloak enroll --from-video``'s steps (:mod:`cloak.video.enrol_video`); finding and listing
tracks on a real clip is tested through the command in test_video_enrol.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from cloak.video.enrol_video import save_faces


def test_save_faces(tmp_path: Path) -> None:
    """Each face is saved as <name>_<frame:06d>.png, rounded and clipped to 8 bits."""
    canonical = torch.full((3, 8, 8), 100.4)
    canonical[0, 0, 0], canonical[1, 0, 0] = -5.0, 300.0
    faces = [SimpleNamespace(frame=7, canonical=canonical),
             SimpleNamespace(frame=1234, canonical=canonical + 1)]
    folder = tmp_path / "faces" / "ada"
    save_faces(faces, folder, "Ada Lovelace/1")
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0].endswith("_000007.png")
    assert names[1].endswith("_001234.png") and "/" not in names[0]
    pixels = np.asarray(Image.open(folder / names[0]))
    assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[0, 0]) == (0, 255, 100) and pixels[1, 1, 2] == 100

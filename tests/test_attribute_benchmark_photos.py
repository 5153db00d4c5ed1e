"""Each photo under every condition (evaluation.attributes.photos) on UTKFace chips."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import shared_data

import attackers
from attackers.landmarks import Landmarker
from cloak.faces import align_faces
from cloak.opom import MODES, learn_mask, training_face
from evaluation.attributes.photos import condition_photos
from evaluation.attributes.utkface import utkface_faces
from evaluation.physical_masks import STYLES
from evaluation.protocol.lfw import load_rgb

_STEPS = 2


@pytest.mark.data
def test_masks_and_cloaks_change_only_their_pixels(one_torch_thread):
    """Physical masks change pixels only inside their coverage; cloaks at most eps per pixel."""
    detector = attackers.load("mtcnn")
    labelled, _ = utkface_faces(shared_data("utkface", "balanced"), limit=2)
    photos = [load_rgb(p) for p, _ in labelled]
    pad = 50
    faces = []
    for photo in photos:
        found = align_faces([torch.nn.functional.pad(photo, (pad,) * 4)], detector)[0]
        assert found, "MTCNN found no face on the padded chip"
        faces.append(found[0])
    config = dataclasses.replace(MODES["fast"].config, steps=_STEPS)
    surrogates = [attackers.load(n) for n in MODES["fast"].surrogates]

    calls = []

    def cloak(i, pixels, face, key):
        calls.append((i, key))
        assert torch.equal(pixels, photos[i])
        return learn_mask([training_face(pixels, face)], surrogates, config)

    conditions = ("clean", *(f"mask-{s}" for s in STYLES), "cloak", "cloak+mask-paper")
    made = condition_photos(photos, faces, conditions, detector=detector,
                            landmarker=Landmarker(), cloak=cloak, seeds=[1, 2],
                            feather=config.feather, pad=pad)
    assert calls == [(0, "cloak"), (1, "cloak")]  # one clean cloak per photo serves both
    for photo, item in zip(photos, made, strict=True):
        assert not item.failed
        for style in STYLES:
            masked, covered = item.pixels[f"mask-{style}"], item.coverage[style]
            assert covered.shape == photo.shape[1:]
            assert 0.05 < covered.float().mean() < 0.6
            assert torch.equal(masked[:, ~covered], photo[:, ~covered])
            assert (masked[:, covered] != photo[:, covered]).any()
        for condition, source in (("cloak", "clean"), ("cloak+mask-paper", "mask-paper")):
            change = (item.pixels[condition] - item.pixels[source]).abs()
            assert 0 < change.max() <= config.eps
        for condition in conditions:
            pixels = item.pixels[condition]
            assert torch.equal(pixels, pixels.round()) and 0 <= pixels.min() <= pixels.max() <= 255
            assert item.frames[condition].shape == (3, 224, 224)
            assert condition in item.found

"""Face detection on a synthetic clip of real LFW faces (:mod:`cloak.video.detection`): every
face found near its true landmarks, the detection steps, coarse steps, errors.

The clip is ``conftest.crossing_clip`` (two people crossing and a stranger, encoded to H.264 and
decoded back, so the detector sees compressed frames). The real MTCNN and SFace run throughout,
on one thread.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CROSSING_FRAMES as FRAMES
from conftest import CROSSING_PEOPLE as PEOPLE
from conftest import crossing_batches

from cloak.video.container import probe
from cloak.video.detection import DEFAULT_FULL_EVERY, DEFAULT_STRIDE, StepDetector, detect_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_clip_ground_truth(crossing_clip, crossing_dense):
    scene, path = crossing_clip
    info = probe(path)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (320, 240, FRAMES, True)
    assert scene.labels == (*PEOPLE, "AJ_Cook") and bool(scene.visible.all())
    # the two people really swap sides
    x = (scene.boxes[..., 0] + scene.boxes[..., 2]) / 2
    assert x[0, 0] < x[0, 1] - 100 and x[-1, 0] > x[-1, 1] + 100
    # every face is found in every decoded frame, near its true landmarks (seeds 0-2: 0.88-0.94 px)
    assert [len(f) for f in crossing_dense.faces] == [3] * FRAMES
    errors = []
    for frame, found in zip(crossing_dense.steps, crossing_dense.faces, strict=True):
        for obs in found:
            errors.append((scene.landmarks[frame] - obs.landmarks).norm(dim=-1).mean(-1).min())
    assert float(torch.stack(errors).mean()) < 1.5


def test_detection_steps(crossing_strided):
    assert crossing_strided.frame_count == FRAMES and crossing_strided.stride == DEFAULT_STRIDE
    assert crossing_strided.steps == (*range(0, FRAMES, DEFAULT_STRIDE), FRAMES - 1)
    embeddings = torch.stack([o.embedding for found in crossing_strided.faces for o in found])
    assert embeddings.shape == (3 * len(crossing_strided.steps), 128)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(len(embeddings)), atol=1e-5)


def test_coarse_steps_find_the_same_faces(crossing_clip, mtcnn):
    """Steps that skip the pyramid's fine levels (every face in view large) find the same faces.

    The clip is upscaled twice (faces 75-110 px), so the steps between full ones start the
    pyramid at half the smallest face instead of 20 px.
    """
    found = {}
    for full_every in (1, DEFAULT_FULL_EVERY):
        steps = StepDetector(mtcnn, stride=DEFAULT_STRIDE, full_every=full_every, workers=2)
        count = 0
        for batch in crossing_batches(crossing_clip[1]):
            big = torch.nn.functional.interpolate(batch, scale_factor=2, mode="bilinear")
            for k in range(big.shape[0]):
                if steps.wants(count + k) or count + k == FRAMES - 1:
                    steps.add(count + k, big[k])
            count += big.shape[0]
        found[full_every] = steps.finish(FRAMES), steps.pyramids
    (fine, fine_pyramids), (coarse, coarse_pyramids) = found[1], found[DEFAULT_FULL_EVERY]
    every = DEFAULT_FULL_EVERY
    assert set(fine_pyramids) == {20.0}
    assert coarse_pyramids[0::every] == fine_pyramids[0::every]
    # the other steps start at half the stranger's face
    assert min(p for k, p in enumerate(coarse_pyramids) if k % every) > 30
    truth = 2 * crossing_clip[0].landmarks + 0.5              # the upscaled pixel grid
    errors = {}
    for name, found_faces in (("fine", fine), ("coarse", coarse)):
        per_face = []
        for step, faces in zip(found_faces.steps, found_faces.faces, strict=True):
            assert len(faces) == 3
            for obs in faces:
                per_face.append((truth[step] - obs.landmarks).norm(dim=-1).mean(-1).min())
        errors[name] = float(torch.stack(per_face).mean())
    # seed 0: mean landmark error 1.20 px with every step fine, 1.32 with three steps of four
    # coarse (DEFAULT_FULL_EVERY = 4, chained pyramids; 1.24 with exact ones)
    # (faces 75-110 px; the upscaled frames are soft)
    assert errors["coarse"] < 1.2 * errors["fine"] + 0.2, errors


def test_errors(mtcnn):
    frames = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="stride"):
        detect_faces([frames], mtcnn, stride=0)
    with pytest.raises(ValueError, match="no frames"):
        detect_faces([], mtcnn)

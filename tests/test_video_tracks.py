"""Face tracks on a synthetic clip of real LFW faces (:mod:`cloak.video.tracks`): linking,
naming, interpolation, smoothing.

The clip is ``conftest.crossing_clip``: 320x240, 40 frames, Colin Powell and Serena Williams
swapping sides (passing within a face height of each other, their cut-outs overlapping) and a
stranger (an LFW distractor), encoded to H.264 with an AAC tone and decoded back, so the
detector sees compressed frames. Ground truth is each photo's own detection carried through the
known motion. The real MTCNN and SFace run throughout, on one thread.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CROSSING_FRAMES as FRAMES
from conftest import CROSSING_PEOPLE as PEOPLE
from conftest import lfw_photos

from cloak.faces.align import similarity_to_frame
from cloak.video.detection import DEFAULT_STRIDE, FaceDetections, box_iou
from cloak.video.tracks import (
    DEFAULT_SIGMA,
    Track,
    faces_per_frame,
    identify_tracks,
    link_tracks,
    smooth_landmarks,
    track_landmarks,
)
from evaluation.video_clips import landmark_error, landmark_jitter

#: Photos 10-14 of each person enrol them; the clip uses photo 0.
ENROL = slice(10, 15)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def enrolled(mtcnn, sface) -> dict[str, torch.Tensor]:
    """Reference features of each person from 5 photos not in the clip."""
    from cloak.faces import align_faces
    from evaluation.protocol.lfw import central_face_index, load_rgb

    refs = {}
    for person in PEOPLE:
        images = [load_rgb(p) for p in lfw_photos(person, ENROL.stop)[ENROL]]
        frames = []
        for image, faces in zip(images, align_faces(images, mtcnn), strict=True):
            boxes = torch.stack([f.detection.box for f in faces])
            frames.append(faces[central_face_index(boxes, tuple(image.shape[1:]))].frame)
        with torch.no_grad():
            refs[person] = sface.embed(torch.stack(frames))
    return refs


def actors_of(track: Track, scene) -> list[int]:
    """Per observation, the actor whose true box it overlaps by IoU > 0.5 (-1: none)."""
    result = []
    for obs in track.observations:
        iou = box_iou(obs.box[None], scene.boxes[obs.frame])[0]
        result.append(int(iou.argmax()) if iou.max() > 0.5 else -1)
    return result


def by_actor(tracks: list[Track], scene) -> dict[int, Track]:
    """Actor -> its track, asserting that each track follows exactly one actor."""
    result = {}
    for track in tracks:
        actors = set(actors_of(track, scene))
        assert len(actors) == 1 and -1 not in actors, f"track {track.id} mixes actors {actors}"
        result[actors.pop()] = track
    return result


def test_tracks_follow_people_through_crossing(crossing_clip, crossing_strided):
    scene = crossing_clip[0]
    tracks = link_tracks(crossing_strided)
    assert len(tracks) == 3
    actors = by_actor(tracks, scene)
    assert sorted(actors) == [0, 1, 2]
    for track in tracks:
        assert [o.frame for o in track.observations] == list(crossing_strided.steps)


def test_identity_per_track(crossing_clip, crossing_strided, enrolled):
    actors = by_actor(link_tracks(crossing_strided), crossing_clip[0])
    names = {t.track_id: t for t in identify_tracks(list(actors.values()), enrolled)}
    for actor, person in enumerate(PEOPLE):
        who = names[actors[actor].id]
        # seeds 0-2: 0.68-0.70 for the right person, 0.07-0.08 for the other
        assert who.person == person and who.embedded == len(crossing_strided.steps)
        assert who.scores[person] > 0.55
        assert max(s for p, s in who.scores.items() if p != person) < 0.2
    stranger = names[actors[2].id]
    assert stranger.person is None and max(stranger.scores.values()) < 0.32  # 0.23-0.25


def test_interpolation_matches_per_frame_detection(crossing_clip, crossing_dense, crossing_strided):
    """Between detection steps, interpolated landmarks agree with detecting every frame."""
    scene = crossing_clip[0]
    tracks = by_actor(link_tracks(crossing_strided), scene)
    full = by_actor(link_tracks(crossing_dense), scene)
    errors = []
    for actor, track in tracks.items():
        frames, marks = track_landmarks(track, FRAMES, DEFAULT_STRIDE, sigma=0)
        assert frames.tolist() == list(range(FRAMES))
        detected = torch.stack([o.landmarks for o in full[actor].observations])
        between = [f for f in range(FRAMES) if f not in crossing_strided.steps]
        errors.append((marks[between] - detected[between]).norm(dim=-1))
    errors = torch.cat(errors)
    # seeds 0-2: mean 0.83-0.93 px, worst landmark 2.9-6.3 px (faces about 50 px wide)
    assert float(errors.mean()) < 1.5 and float(errors.max()) < 8.0


def test_smoothing_reduces_jitter(crossing_clip, crossing_dense):
    scene = crossing_clip[0]
    before, after, err_before, err_after = [], [], [], []
    for actor, track in by_actor(link_tracks(crossing_dense), scene).items():
        truth = scene.landmarks[:, actor]
        raw = track_landmarks(track, FRAMES, 1, sigma=0)[1]
        smooth = track_landmarks(track, FRAMES, 1, sigma=DEFAULT_SIGMA)[1]
        before.append(landmark_jitter(raw, truth))
        after.append(landmark_jitter(smooth, truth))
        err_before.append(landmark_error(raw, truth))
        err_after.append(landmark_error(smooth, truth))
    # seeds 0-2: jitter 0.74-0.84 -> 0.16-0.18 px per frame (x 0.21-0.23), error 0.88-0.94 ->
    # 0.75-0.79 px
    assert sum(after) < 0.35 * sum(before)
    assert sum(err_after) <= sum(err_before)


def test_faces_per_frame(crossing_clip, crossing_strided, enrolled):
    scene = crossing_clip[0]
    tracks = link_tracks(crossing_strided)
    identities = identify_tracks(tracks, enrolled)
    per_frame = faces_per_frame(tracks, identities, FRAMES, DEFAULT_STRIDE)
    assert len(per_frame) == FRAMES
    actors = {t.id: a for a, t in by_actor(tracks, scene).items()}
    expected = (*PEOPLE, None)
    worst = 0.0
    for frame, faces in enumerate(per_frame):
        assert sorted(actors[f.track_id] for f in faces) == [0, 1, 2]
        for face in faces:
            actor = actors[face.track_id]
            assert face.person == expected[actor]
            # where the mask lands: true landmarks through the matrix used vs the true matrix
            truth = scene.landmarks[frame, actor]
            ideal = similarity_to_frame(truth[None])[0]
            used = truth @ face.matrix[:, :2].T + face.matrix[:, 2]
            worst = max(worst, float((used - (truth @ ideal[:, :2].T + ideal[:, 2]))
                                     .norm(dim=-1).mean()))
    # canonical-frame pixels (faces here are ~4x smaller than the frame): seeds 0-2, worst
    # 3.8-4.3, mean 2.2
    assert worst < 6.0


def test_track_ends_after_max_missed(crossing_clip, crossing_strided):
    """A face missing for max_missed steps keeps its track; one step more starts a new one."""
    scene = crossing_clip[0]
    stranger = by_actor(link_tracks(crossing_strided), scene)[2]
    first_box = stranger.observations[0].box

    def without_stranger(steps: range) -> FaceDetections:
        faces = tuple(tuple(o for o in found if not (k in steps and bool(
            box_iou(o.box[None], scene.boxes[o.frame, 2:3])[0, 0] > 0.5)))
                      for k, found in enumerate(crossing_strided.faces))
        return FaceDetections(crossing_strided.frame_count, crossing_strided.stride,
                              crossing_strided.steps, faces)

    kept = link_tracks(without_stranger(range(3, 5)), max_missed=2)
    assert len(kept) == 3
    gap = by_actor(kept, scene)[2]
    frames, marks = track_landmarks(gap, FRAMES, DEFAULT_STRIDE)
    assert frames.tolist() == list(range(FRAMES))  # the gap is interpolated over
    assert landmark_error(marks, scene.landmarks[:, 2]) < 2.0
    split = link_tracks(without_stranger(range(3, 6)), max_missed=2)
    assert len(split) == 4
    ended = next(t for t in split if torch.equal(t.observations[0].box, first_box))
    assert ended.last == crossing_strided.steps[2] and split[3].first == crossing_strided.steps[6]


def test_smooth_landmarks_keeps_accelerating_motion():
    t = torch.arange(30, dtype=torch.float64)[:, None, None]
    offsets = torch.rand(1, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    motion = 100 * offsets + 3.0 * t - 0.2 * t * t
    assert torch.allclose(smooth_landmarks(motion, 3.0), motion, atol=1e-6)
    assert torch.equal(smooth_landmarks(motion, 0.0), motion)
    with pytest.raises(ValueError, match="sigma"):
        smooth_landmarks(motion, -1.0)


def test_errors(crossing_strided):
    tracks = link_tracks(crossing_strided)
    with pytest.raises(ValueError, match="identities"):
        faces_per_frame(tracks, [], FRAMES, DEFAULT_STRIDE)

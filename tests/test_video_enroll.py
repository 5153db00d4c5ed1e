"""`cloak enroll NAME --from-video FILE [--track N]`: list a video's face tracks, learn from one.

The clip (:mod:`evaluation.video_clips`, 320x240, 40 frames): Colin Powell and Serena Williams
crossing and a stranger, encoded to H.264. Real MTCNN finds the tracks; the faces picked from a
track are checked to be that person with the real SFace against other LFW photos of them, and a
short real optimisation (2 steps, fast mode) writes the mask file.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import lfw_photos, shared_data
from PIL import Image

from cloak.cli import main
from cloak.mask import load_mask
from cloak.video.enroll import find_tracks, pick_track_faces, save_faces, sharpness
from evaluation.video_clips import crossing_scene, render_clip, write_clip

PEOPLE = ("Colin_Powell", "Serena_Williams")
FRAMES = 40

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip(mtcnn, tmp_path_factory):
    people = [lfw_photos(p, 1)[0] for p in PEOPLE]
    scene = render_clip(crossing_scene(people, shared_data("lfw", "distractors",
                                                           "AJ_Cook_0001.jpg")),
                        mtcnn, size=(320, 240), frames=FRAMES, seed=0)
    path = tmp_path_factory.mktemp("enrol") / "crossing.mp4"
    write_clip(scene, path)
    return scene, path


@pytest.fixture(scope="module")
def listing(clip) -> list[dict]:
    result = CliRunner().invoke(main, ["enroll", "colin", "--from-video", str(clip[1]),
                                       "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["tracks"]


def actor_of(track: dict, scene) -> int:
    """The actor whose first true box centre is nearest the track's first centre."""
    first = track["first_frame"]
    centres = (scene.boxes[first, :, :2] + scene.boxes[first, :, 2:]) / 2
    return int((centres - torch.tensor(track["first_centre"])).norm(dim=1).argmin())


def test_listing(clip, listing):
    scene = clip[0]
    assert len(listing) == 3
    assert sorted(actor_of(t, scene) for t in listing) == [0, 1, 2]
    for track in listing:
        assert track["frames"] == [0, FRAMES - 1] and track["detections"] == 11
        assert 30 < track["face_size"] < 70
        assert "scores" not in track and "person" not in track
    text = CliRunner().invoke(main, ["enroll", "colin", "--from-video", str(clip[1]), "-q"])
    assert text.exit_code == 0 and "3 face tracks" in text.stdout


def test_sharpness_prefers_sharp_faces(clip, mtcnn):
    from cloak.faces import align_faces
    from evaluation.protocol.lfw import load_rgb

    face = align_faces([load_rgb(lfw_photos(PEOPLE[0], 1)[0])], mtcnn)[0][0].frame[None]
    blurred = F.avg_pool2d(F.pad(face, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    sharp, soft = sharpness(torch.cat([face, blurred])).tolist()
    assert sharp > 3 * soft > 0


def test_picked_faces_are_spread_and_the_person(clip, listing, mtcnn):
    import attackers
    from cloak.faces import align_faces
    from evaluation.protocol.lfw import load_rgb

    scene, path = clip
    colin = next(t["track"] for t in listing if actor_of(t, scene) == 0)
    picked = pick_track_faces(find_tracks(path, mtcnn), colin, count=5)
    frames = [p.frame for p in picked]
    assert len(frames) == 5 and frames == sorted(frames)
    assert frames[0] <= 8 and frames[-1] >= 32            # one in each fifth of the track
    sface = attackers.load("sface")
    photos = [load_rgb(p) for p in lfw_photos(PEOPLE[0], 15)[10:15]]
    refs = torch.stack([faces[0].frame for faces in align_faces(photos, mtcnn)])
    with torch.no_grad():
        similarity = sface.embed(torch.stack([p.canonical for p in picked])) @ sface.embed(
            refs).T
    assert float(similarity.mean()) > 0.45    # the person: 0.69; the other tracks 0.06-0.24
    with pytest.raises(ValueError, match="no track 9"):
        pick_track_faces(find_tracks(path, mtcnn), 9)


def test_learn_from_track(clip, listing, tmp_path):
    scene, path = clip
    serena = next(t["track"] for t in listing if actor_of(t, scene) == 1)
    out = tmp_path / "serena.cloak"
    result = CliRunner().invoke(main, [
        "enroll", "serena", "--from-video", str(path), "--track", str(serena), "--mode", "fast",
        "--steps", "2", "-o", str(out), "--faces-to", str(tmp_path / "faces"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["track"] == serena and summary["training_faces"] == 10
    mask = load_mask(out)
    assert mask.person == "serena" and mask.surrogates == ["facenet", "dlib-resnet"]
    assert mask.settings["training_faces"] == 10 and mask.settings["steps"] == 2
    assert float(mask.delta.abs().max()) <= mask.eps + 1e-4
    assert len(list((tmp_path / "faces").glob("serena_*.png"))) == 10


def test_usage_errors(clip, tmp_path):
    path = str(clip[1])
    runner = CliRunner()
    both = runner.invoke(main, ["enroll", "x", path, "--from-video", path])
    assert both.exit_code == 2 and "not both" in both.output
    neither = runner.invoke(main, ["enroll", "x"])
    assert neither.exit_code == 2 and "--from-video" in neither.output
    stray = runner.invoke(main, ["enroll", "x", str(tmp_path), "--track", "1"])
    assert stray.exit_code == 2 and "--from-video" in stray.output
    missing = runner.invoke(main, ["enroll", "x", "--from-video", path, "--track", "9",
                                   "-o", str(tmp_path / "x.cloak")])
    assert missing.exit_code == 2 and "no track 9" in missing.output


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

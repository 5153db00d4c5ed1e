"""The protect / enroll pipeline on real photos and real models.

- the whole ``bad_inputs`` folder, plus a named pipe, a socket and a folder named like photos,
  through the real command (a subprocess, so its peak memory is measured): protectable files
  written faithfully, one error line per refused entry, exit code 1, a rerun skips what is done,
  originals untouched;
- a folder of 6 LFW photos of one person and 2 of another: the person is found, the other's
  photos are not written, outputs differ from the inputs only inside the face's frame and by at
  most eps before encoding (JPEG's extra deviation is measured), an existing mask protects new
  photos quickly, enroll gives the same mask for the same seed, a rerun reuses the saved mask.

Learning is not what is tested here, so masks are learned with tiny settings (1-2 steps, one
surrogate); the optimiser has its own tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, lfw_photos, shared_data
from PIL import Image

from cloak.faces import align_faces
from cloak.faces.align import WINDOW_MARGIN, frames_footprint
from cloak.identity import cluster_faces, main_identity
from cloak.imageio import DEFAULT_MAX_PIXELS, read_photo, write_photo
from cloak.mask import load_mask, save_mask
from cloak.masking import LearnSettings, mask_digest
from cloak.opom import TERMS
from cloak.photos import (
    MANIFEST_NAME,
    ProtectOptions,
    UsageError,
    default_output,
    enroll,
    protect,
    protected_pixels,
    safe_name,
)
from cloak.photos.write import REFINE_BATCH

FAST = LearnSettings(steps=2, surrogates=("dlib-resnet",))
PERSON, OTHER = "Colin_Powell", "Serena_Williams"
EPS = 8.0
GPS_IFD = 0x8825

#: bad_inputs file -> the reason its error line must give.
BAD = {
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated or corrupt image",
    "not_an_image.jpg": "not an image",
    "tiny_face.jpg": "image too small (24x24)",
    "animated.gif": "animated or multi-page image",
    "no_face.jpg": "no face found",
}
#: bad_inputs file -> (format, mode) of its protected copy.
GOOD = {
    "UPPERCASE_EXT.JPG": ("JPEG", "RGB"),
    "cmyk.jpg": ("JPEG", "RGB"),
    "exif_rotated.jpg": ("JPEG", "RGB"),
    "face.png": ("PNG", "RGB"),
    "face.webp": ("WEBP", "RGB"),
    "gray16.png": ("PNG", "I;16"),
    "grayscale.jpg": ("JPEG", "L"),
    "large_48mp.jpg": ("JPEG", "RGB"),
    "name with spaces é.jpg": ("JPEG", "RGB"),
    "nested/deeper/face_in_subfolder.jpg": ("JPEG", "RGB"),
    "no_extension": ("JPEG", "RGB"),
    "rgba.png": ("PNG", "RGBA"),
    "with_gps.jpg": ("JPEG", "RGB"),
}


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The real ``cloak`` command in a fresh interpreter (stdout, stderr captured), 1 thread.

    Returns the finished process and its own peak resident memory in MB: ``VmHWM`` of
    /proc/self/status, read as the command exits. (``ru_maxrss`` would not do: Linux carries
    the forking process's peak, here the whole test session's, across ``exec``.)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "vmhwm"
        code = ("import atexit, pathlib, runpy, sys; report = pathlib.Path(sys.argv.pop(1)); "
                "atexit.register(lambda: report.write_text(next(line for line in "
                "open('/proc/self/status') if line.startswith('VmHWM')))); "
                "runpy.run_module('cloak.cli', run_name='__main__', alter_sys=True)")
        done = subprocess.run([sys.executable, "-c", code, str(report), *args],
                              capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                              timeout=600)
        peak_kb = float(report.read_text().split()[1])
    return done, peak_kb / 1024


def decoded(path: Path) -> np.ndarray:
    """A file's pixels as stored (int64 H x W x C), orientation not applied."""
    with Image.open(path) as image:
        array = np.asarray(image, dtype=np.int64)
    return array if array.ndim == 3 else array[..., None]


# -- the bad_inputs folder through the real command ------------------------------------------


def add_special_entries(folder: Path) -> dict[str, str]:
    """A named pipe, a socket and an empty folder, each named like a photo, in ``folder``.

    Returns the error reason expected for each refused entry (the folder is walked, not refused).
    """
    os.mkfifo(folder / "pipe.jpg")  # opening it for reading would block forever (issue 12)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "socket.png"))
    (folder / "dir.jpg").mkdir()
    return {"pipe.jpg": "not a regular file (a named pipe)",
            "socket.png": "not a regular file (a socket)"}


@pytest.mark.data
@pytest.mark.timeout(900)  # a named pipe that were opened would block the command forever
def test_bad_inputs_folder(tmp_path: Path) -> None:
    """The whole folder plus a named pipe, a socket and a folder named like photos: protect what
    can be, one error line per refused entry, exit 1, nothing modified, a rerun skips; with
    --refine the same lines and outputs."""
    source = shared_data("bad_inputs")
    before = tree_hashes(source)
    folder = tmp_path / "bad_inputs"
    shutil.copytree(source, folder)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    copies = tree_hashes(folder)
    refused = {**BAD, **add_special_entries(folder)}
    out = tmp_path / "bad_inputs_cloaked"

    args = ("protect", str(folder), "--steps", "1", "--surrogates", "dlib-resnet", "--json")
    first, peak_mb = run_cli(*args)
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    status = {Path(f["input"]).relative_to(folder).as_posix(): f for f in report["files"]}
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(refused), errors
    for name, reason in refused.items():
        assert status[name]["status"] == "failed"
        assert reason in status[name]["reason"]
        assert any(line.startswith(f"error: {folder / name}: ") and reason in line
                   for line in errors), name
    assert report["totals"]["failed"] == len(refused)
    assert not any("dir.jpg" in name for name in status), "a folder was taken for a photo"
    assert report["totals"]["protected"] == len(GOOD)
    assert report["mask"]["source"] == "learned" and (out / "bad_inputs.cloak").is_file()
    print(f"\npeak RSS of `cloak protect bad_inputs` (48 MP photo included): {peak_mb:.0f} MB")
    assert peak_mb < 2500

    for name, (fmt, mode) in GOOD.items():
        entry = status[name]
        assert entry["status"] == "protected" and entry["faces"] == 1, entry
        assert entry["output"] == str(out / name)
        original, written = read_photo(folder / name), read_photo(out / name)
        with Image.open(out / name) as image:
            assert (image.format, image.mode) == (fmt, mode), name
            assert image.size == (original.width, original.height), name
            exif = image.getexif()
            assert GPS_IFD not in exif, f"{name}: GPS kept"
            assert exif.get(0x0112, 1) == 1, f"{name}: orientation tag kept"
        if name == "large_48mp.jpg":
            continue  # compared on the working copy below, to keep the test lean
        diff = (written.pixels - original.pixels).abs()
        slack = 12 if fmt == "JPEG" else 0.01  # JPEG: measured below; 16-bit: 1/257 rounding
        assert diff.max() <= EPS + slack, f"{name}: max change {diff.max()}"
        assert diff.mean() > 0.05, f"{name}: nothing changed"
    rgba_in, rgba_out = read_photo(folder / "rgba.png"), read_photo(out / "rgba.png")
    assert torch.equal(rgba_in.alpha, rgba_out.alpha)
    # upright: the rotated photo's output matches the upright PNG's output where no mask landed
    upright = read_photo(out / "face.png").pixels
    rotated = read_photo(out / "exif_rotated.jpg").pixels
    assert (rotated - upright).abs().mean() < 3.0
    big_in, big_out = read_photo(folder / "large_48mp.jpg"), read_photo(out / "large_48mp.jpg")
    assert big_out.samples.shape == big_in.samples.shape
    small_in, _ = big_in.downscaled(800)
    small_out, _ = big_out.downscaled(800)
    assert 0 < (small_out - small_in).abs().mean() < 1.0
    del big_in, big_out
    assert tree_hashes(folder) == copies, "an input was modified"

    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second, _ = run_cli(*args)
    assert second.returncode == 1
    assert len([line for line in second.stderr.splitlines() if line.startswith("error: ")]) \
        == len(refused)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written, \
        "a finished output was rewritten"
    report = json.loads(second.stdout)
    assert report["mask"]["source"] == "reused"
    assert report["totals"]["up-to-date"] == len(GOOD) \
        and report["totals"]["failed"] == len(refused)
    assert tree_hashes(source) == before, "shared data was modified"
    assert tree_hashes(folder) == copies, "an input was modified"
    assert stat.S_ISFIFO((folder / "pipe.jpg").lstat().st_mode)
    assert stat.S_ISSOCK((folder / "socket.png").lstat().st_mode)
    assert not any((out / name).exists() for name in ("pipe.jpg", "socket.png", "dir.jpg"))

    refined, peak_mb = run_cli(*args, "--refine", "1", "-o", str(tmp_path / "refined"))
    assert refined.returncode == 1, refined.stderr
    assert [line for line in refined.stderr.splitlines() if line.startswith("error: ")] == errors
    report = json.loads(refined.stdout)
    assert report["totals"]["protected"] == len(GOOD) \
        and report["totals"]["failed"] == len(refused)
    print(f"peak RSS with --refine 1 (batches of {REFINE_BATCH} faces): {peak_mb:.0f} MB")
    assert peak_mb < 2500
    assert tree_hashes(folder) == copies, "an input was modified"


@pytest.mark.data
def test_largest_accepted_photo_stays_under_2_5_gb(tmp_path: Path) -> None:
    """The 48 MP photo enlarged to just under DEFAULT_MAX_PIXELS (the largest photo read_photo
    accepts), protected by the real command: its peak memory stays under 2.5 GB."""
    side = math.isqrt(DEFAULT_MAX_PIXELS * 3 // 4)  # 4:3, as the 48 MP photo
    size = (side * 4 // 3, side)
    assert 0.99 * DEFAULT_MAX_PIXELS < size[0] * size[1] <= DEFAULT_MAX_PIXELS
    folder = tmp_path / "big"
    folder.mkdir()
    with Image.open(shared_data("bad_inputs", "large_48mp.jpg")) as image:
        image.resize(size, Image.Resampling.BILINEAR).save(folder / "largest.jpg", quality=90)
    done, peak_mb = run_cli("protect", str(folder), "--steps", "1", "--surrogates",
                            "dlib-resnet", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["protected"] == 1
    print(f"\npeak RSS of `cloak protect` on a {size[0]}x{size[1]} photo: {peak_mb:.0f} MB")
    assert peak_mb < 2500


# -- one person's folder with another person mixed in ----------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    """6 photos of PERSON and 2 of OTHER in a folder named "Colin", protected once."""
    folder = tmp_path_factory.mktemp("mixed") / "Colin"
    folder.mkdir()
    mine, theirs = lfw_photos(PERSON, 6), lfw_photos(OTHER, 2)
    for path in mine + theirs:
        shutil.copy2(path, folder / path.name)
    hashes = tree_hashes(folder)
    summary = protect([folder], ProtectOptions(learn=FAST))
    return {"folder": folder, "summary": summary, "hashes": hashes,
            "mine": [p.name for p in mine], "theirs": [p.name for p in theirs]}


@pytest.mark.data
def test_person_found_others_untouched(mixed: dict) -> None:
    """The person (6 photos) is found; the other person's photos are reported and not written."""
    summary, folder = mixed["summary"], mixed["folder"]
    out = folder.parent / "Colin_cloaked"
    assert summary.output == out and summary.person == "Colin"
    assert summary.person_photos == 6 and summary.failed == 0
    by_name = {r.path.name: r for r in summary.files}
    for name in mixed["mine"]:
        assert by_name[name].status == "protected" and by_name[name].faces >= 1
        assert (out / name).is_file()
    for name in mixed["theirs"]:
        result = by_name[name]
        assert result.status == "not-person" and result.faces == 0 and result.other_faces >= 1
        assert "left untouched" in result.reason and result.output is None
        assert not (out / name).exists()
    mask = load_mask(out / "Colin.cloak")
    assert mask.person == "Colin" and mask.surrogates == ["dlib-resnet"]
    assert mask.settings["training_faces"] == 6
    assert tree_hashes(folder) == mixed["hashes"], "an input was modified"


def test_changes_only_in_the_face_and_within_eps(mixed: dict, mtcnn) -> None:
    """Before encoding: |change| <= eps, only inside the face's frame. After JPEG: measured."""
    folder, out = mixed["folder"], mixed["summary"].output
    mask = load_mask(out / "Colin.cloak")
    slack, spill = [], []
    for name in mixed["mine"]:
        photo = read_photo(folder / name)
        faces = align_faces([photo.pixels], mtcnn)[0]
        matrices = torch.stack([f.matrix for f in faces])
        pixels = protected_pixels(photo, matrices[:1], mask.delta)  # LFW: the top face
        change = pixels.long() - photo.samples.long()
        x0, y0, x1, y1 = frames_footprint(matrices[:1], photo.height, photo.width,
                                          WINDOW_MARGIN)
        inside = torch.zeros_like(change, dtype=torch.bool)
        inside[:, y0:y1, x0:x1] = True
        assert change.abs().max() <= EPS, "the eps bound fails before encoding"
        assert change.abs().float().mean() > 1.0, "the mask was not applied"
        assert not change[~inside].any(), "pixels outside the face's frame changed"
        if len(faces) == 1:  # the file written is exactly these pixels, encoded
            reference = write_photo(photo, pixels, out.parent / "reference" / name)
            assert (out / name).read_bytes() == reference.read_bytes()
        stored = decoded(out / name).transpose(2, 0, 1)
        slack.append(np.abs(stored - pixels.numpy()))
        baseline = decoded(write_photo(photo, photo.samples, out.parent / "plain" / name))
        blocks = inside.clone()
        blocks[:, (y0 // 8) * 8:-(-y1 // 8) * 8, (x0 // 8) * 8:-(-x1 // 8) * 8] = True
        spill.append(np.abs(stored - baseline.transpose(2, 0, 1))[~blocks.numpy()].max())
    worst = max(s.max() for s in slack)
    mean = np.mean([s.mean() for s in slack])
    print(f"\nJPEG q95 (4:4:4) deviation from the exact protected pixels: max {worst} levels, "
          f"mean {mean:.2f}; outside the face's 8x8 blocks vs re-encoding the original: max "
          f"{max(spill)}")
    assert worst <= 20 and mean < 2.5  # measured: max 15, mean 1.3 (a +/-8 mask is all detail)
    assert max(spill) == 0, "JPEG output changed blocks away from the face"


@pytest.mark.data
def test_mask_protects_new_photos(mixed: dict, tmp_path: Path) -> None:
    """An existing mask applied to new photos of the person; seconds per photo measured."""
    mask_file = mixed["summary"].output / "Colin.cloak"
    mask = load_mask(mask_file)
    new = tmp_path / "new"
    new.mkdir()
    for path in lfw_photos(PERSON, 10)[6:]:
        shutil.copy2(path, new / path.name)
    summary = protect([new], ProtectOptions(mask=mask))
    assert summary.mask_source == "given" and summary.mask_sha256 == mixed["summary"].mask_sha256
    assert [r.status for r in summary.files] == ["protected"] * 4
    assert not (tmp_path / "new_cloaked" / "Colin.cloak").exists(), "a given mask is not copied"
    for result in summary.files:
        change = read_photo(result.output).pixels - read_photo(result.path).pixels
        assert change.abs().mean() > 0.3
    seconds = [r.seconds for r in summary.files]
    print(f"\napply an existing mask (read, find faces, identify, paste, write) per LFW photo: "
          f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s (shared CPU)")
    assert statistics.median(seconds) < 1.5


@pytest.mark.data
def test_all_faces(mixed: dict, tmp_path: Path) -> None:
    """--all-faces: every face is protected, the other person's photos included."""
    mask = load_mask(mixed["summary"].output / "Colin.cloak")
    summary = protect([mixed["folder"]], ProtectOptions(mask=mask, all_faces=True,
                                                        output=tmp_path / "all"))
    assert [r.status for r in summary.files] == ["protected"] * 8
    assert all(r.other_faces == 0 and r.faces >= 1 for r in summary.files)
    for name in mixed["theirs"]:
        change = read_photo(tmp_path / "all" / name).pixels - read_photo(mixed["folder"] / name)\
            .pixels
        assert change.abs().mean() > 0.3


@pytest.mark.data
def test_enroll_same_seed_same_mask(mixed: dict, tmp_path: Path) -> None:
    """enroll writes a loadable mask, equal to protect's on the same photos and seed."""
    target = tmp_path / "colin.cloak"
    summary = enroll("Colin Powell", [mixed["folder"]], target, FAST)
    mask = load_mask(target)
    assert summary.mask_path == target and mask.person == "Colin Powell"
    assert sorted(r.status for r in summary.files) == ["not-person"] * 2 + ["used"] * 6
    learned = load_mask(mixed["summary"].output / "Colin.cloak")
    assert torch.equal(mask.delta, learned.delta), "same photos and seed, different mask"
    assert mask.delta.abs().max() <= EPS and mask.delta.abs().mean() > 1.0


@pytest.mark.data
def test_rerun_reuses_mask_and_skips(mixed: dict) -> None:
    """A rerun after an interruption: the saved mask is reused, only missing outputs are made."""
    folder, out = mixed["folder"], mixed["summary"].output
    missing = out / mixed["mine"][0]
    content = missing.read_bytes()
    missing.unlink()
    summary = protect([folder], ProtectOptions(learn=FAST))
    assert summary.mask_source == "reused" and summary.learn_seconds == 0
    status = {r.path.name: r.status for r in summary.files}
    assert status.pop(mixed["mine"][0]) == "protected"
    assert sorted(status.values()) == ["not-person"] * 2 + ["up-to-date"] * 5
    assert missing.read_bytes() == content, "the same mask gave a different output"
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == set(mixed["mine"])
    forced = protect([folder], ProtectOptions(learn=FAST, force=True))
    assert forced.mask_source == "learned"
    assert forced.mask_sha256 == mixed["summary"].mask_sha256, "same seed, different mask"
    assert sorted(r.status for r in forced.files) == ["not-person"] * 2 + ["protected"] * 6


@pytest.mark.data
def test_mask_from_before_the_objective_terms(mixed: dict, tmp_path: Path) -> None:
    """A mask file written before the optional objective terms existed (its settings name none
    of linkage, views, anchor) loads, counts as learned with the terms off (reused by a run
    that asks for OPOM alone, relearned by one that asks for today's default) and protects."""
    learned = load_mask(mixed["summary"].output / "Colin.cloak")
    assert set(TERMS) <= set(learned.settings), "today's masks record every term"
    out = tmp_path / "Colin_cloaked"
    out.mkdir()
    old = dataclasses.replace(learned, settings={k: v for k, v in learned.settings.items()
                                                 if k not in TERMS})
    save_mask(old, out / "Colin.cloak")
    loaded = load_mask(out / "Colin.cloak")
    assert not set(TERMS) & set(loaded.settings)
    opom_only = dataclasses.replace(FAST, terms=())
    summary = protect([mixed["folder"]], ProtectOptions(learn=opom_only, output=out))
    assert summary.mask_source == "reused", "an old mask was not taken as 'terms off'"
    assert summary.mask_sha256 == mask_digest(loaded)
    assert sorted(r.status for r in summary.files) == ["not-person"] * 2 + ["protected"] * 6
    for result in summary.files:
        if result.status == "protected":
            change = read_photo(result.output).pixels - read_photo(result.path).pixels
            assert change.abs().mean() > 0.3
    relearned = protect([mixed["folder"]], ProtectOptions(learn=FAST, output=out))
    assert relearned.mask_source == "learned", "an old mask was taken for today's default"


# -- small pieces ------------------------------------------------------------------------------


def test_protected_pixels_in_strips_equal_whole_photo(monkeypatch, mtcnn) -> None:
    """Pasting in row strips of a window gives exactly the whole-photo paste."""
    from cloak.opom import protect_photo
    from cloak.photos import paste as module

    photo = read_photo(lfw_photos(PERSON, 1)[0])
    faces = align_faces([photo.pixels], mtcnn)[0]
    delta = torch.linspace(-EPS, EPS, 3 * 224 * 224).reshape(3, 224, 224)
    whole = protect_photo(photo.pixels, faces, delta).round().to(torch.uint8)
    monkeypatch.setattr(module, "_STRIP_ROWS", 37)
    strips = protected_pixels(photo, torch.stack([f.matrix for f in faces]), delta)
    assert torch.equal(strips, whole)


def test_cluster_and_main_identity(lfw_faces) -> None:
    """sface clustering at the calibrated threshold recovers 3 LFW people (4 photos each)."""
    import attackers

    frames, labels = lfw_faces
    with torch.no_grad():
        groups = cluster_faces(attackers.load("sface").embed(frames))
    for person in labels.unique():
        assert len(set(groups[labels == person].tolist())) == 1
    assert len(set(groups.tolist())) == 3
    assert main_identity([[0, 1], [0], [2]], [[50, 90], [60], [99]]) == (0, False)
    assert main_identity([[0], [1]], [[50], [90]]) == (1, True)
    assert main_identity([], []) == (None, False)


@pytest.mark.data
def test_default_output_and_refusals(tmp_path: Path) -> None:
    """Output folder defaults; an output that is the input folder is refused before any work."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    one = photos / "a.jpg"
    shutil.copy2(lfw_photos(PERSON, 1)[0], one)
    assert default_output([photos]) == tmp_path / "photos_cloaked"
    assert default_output([one]) == photos / "a_cloaked"
    assert default_output([one, photos / "sub"]) == tmp_path / "photos_cloaked"
    with pytest.raises(UsageError, match="different folders"):
        default_output([one, tmp_path])
    for output in (photos, tmp_path):
        with pytest.raises(UsageError, match="never overwritten"):
            protect([photos], ProtectOptions(output=output))
    with pytest.raises(UsageError, match="folder of the input"):
        protect([one], ProtectOptions(output=photos))
    assert safe_name("Ada Lovelace/2024") == "Ada_Lovelace_2024" and safe_name("..") == "person"

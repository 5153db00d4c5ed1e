"""`cloak protect --engine dask` on a local two-worker cluster: the same outputs as the local run.

Five LFW photos of two people (fast mode, 2 steps, one refinement step per face, one torch
thread): the Dask run learns the same mask (the same digest: the file holds its creation
time), writes byte-identical photos and the same progress
file; a run interrupted while writing resumes where it stopped, with the local engine's bytes;
the bad_inputs corpus gives the same error lines, statuses and exit code as the local run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, lfw_photos, shared_data

from cloak.mask import load_mask
from cloak.masking import mask_digest
from cloak.photos import MANIFEST_NAME, FileResult, ProtectOptions, Reporter, protect

PEOPLE = {"Colin_Powell": 3, "Tony_Blair": 2}
ARGS = ("--threads", "1", "--refine", "1", "--json", "-q")

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]


def cloak(*args: str | Path) -> subprocess.CompletedProcess:
    """The real ``cloak`` command in a fresh interpreter (stdout, stderr captured)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cloak.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=900)


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (outputs, mask, progress file) by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def statuses(run: subprocess.CompletedProcess, folder: Path) -> dict[str, tuple]:
    """Per input (relative to ``folder``): status, faces, reason, output's name."""
    report = json.loads(run.stdout)
    return {Path(f["input"]).relative_to(folder).as_posix():
            (f["status"], f["faces"], f["other_faces"], f["reason"],
             f["output"] and Path(f["output"]).name) for f in report["files"]}


def errors(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    pytest.importorskip("distributed", reason="the dask engine needs the 'distributed' extra")
    root = tmp_path_factory.mktemp("photos_engine")
    folder = root / "photos"
    folder.mkdir()
    for person, count in PEOPLE.items():
        for path in lfw_photos(person, count):
            shutil.copy2(path, folder / path.name)
    done = {engine: cloak("protect", folder, "-o", root / engine, "--engine", engine,
                          "--mode", "fast", "--steps", "2", *ARGS)
            for engine in ("local", "dask")}
    return {"root": root, "folder": folder, **done}


def test_dask_writes_the_local_bytes(runs: dict) -> None:
    root, folder = runs["root"], runs["folder"]
    for engine in ("local", "dask"):
        assert runs[engine].returncode == 0, runs[engine].stderr
    assert statuses(runs["dask"], folder) == statuses(runs["local"], folder)
    local, dask = outputs(root / "local"), outputs(root / "dask")
    assert sorted(local) == sorted(dask)
    assert {"photos.cloak", MANIFEST_NAME} < set(local)
    assert sum(name.endswith(".jpg") for name in local) == PEOPLE["Colin_Powell"]
    masks = [load_mask(root / engine / "photos.cloak") for engine in ("local", "dask")]
    assert mask_digest(masks[0]) == mask_digest(masks[1])   # the file holds its creation time
    for name in set(local) - {"photos.cloak"}:
        assert dask[name] == local[name], name    # photos and progress file


class Interrupted(Exception):
    """Stands for Ctrl-C while a run writes."""


class InterruptAfterFirstWrite(Reporter):
    def file_done(self, result: FileResult) -> None:
        if result.status == "protected":
            raise Interrupted


def test_interrupted_run_resumes(runs: dict, tmp_path: Path) -> None:
    """A run stopped after its first output: the rerun keeps it and writes the rest, refined
    apart from it; the Dask engine's interrupted run and rerun write the local engine's
    bytes."""
    root, folder = runs["root"], runs["folder"]
    mask_path = root / "local" / "photos.cloak"
    written = {}
    for engine in ("local", "dask"):
        out = tmp_path / engine
        options = ProtectOptions(output=out, mask=load_mask(mask_path), mask_path=mask_path,
                                 refine=1, engine=engine)
        with pytest.raises(Interrupted):
            protect([folder], options, InterruptAfterFirstWrite())
        manifest = json.loads((out / MANIFEST_NAME).read_text())["files"]
        assert len(manifest) == 1
        rerun = cloak("protect", folder, "-o", out, "--engine", engine, "--mask", mask_path,
                      *ARGS)
        assert rerun.returncode == 0, rerun.stderr
        status = [s[0] for s in statuses(rerun, folder).values()]
        assert status.count("up-to-date") == 1 and status.count("protected") == 2
        written[engine] = outputs(out)
    assert written["dask"] == written["local"]
    uninterrupted = outputs(root / "local")
    assert sum(data != uninterrupted[name] for name, data in written["local"].items()
               if name.endswith(".jpg")) == 2


def test_bad_inputs_same_lines_and_exit_code(tmp_path: Path) -> None:
    """The bad_inputs corpus through both engines: the same error lines, statuses, exit code
    and bytes."""
    pytest.importorskip("distributed", reason="the dask engine needs the 'distributed' extra")
    folder = tmp_path / "bad_inputs"
    shutil.copytree(shared_data("bad_inputs"), folder)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    done = {engine: cloak("protect", folder, "-o", tmp_path / engine, "--engine", engine,
                          "--steps", "1", "--surrogates", "dlib-resnet", "--threads", "1",
                          "--json")
            for engine in ("local", "dask")}
    local, dask = done["local"], done["dask"]
    assert local.returncode == dask.returncode == 1, dask.stderr
    assert errors(dask) == errors(local) and len(errors(local)) == 6
    assert statuses(dask, folder) == statuses(local, folder)
    local_files, dask_files = outputs(tmp_path / "local"), outputs(tmp_path / "dask")
    assert sorted(dask_files) == sorted(local_files)
    for name in set(local_files) - {"bad_inputs.cloak"}:
        assert dask_files[name] == local_files[name], name

"""`cloak video --engine dask` on a local two-worker cluster: the same work, the same outputs.

A folder of three small generated clips of real LFW faces (two crossing people and a stranger, in
three casts) plus one file that is not a video. The single-process run and the Dask run (a
``LocalCluster`` of two worker processes, one thread each) must report the same tracks with the
same people on the same frames, hand the encoder the same frames (the digest of the pixels the
masks changed), write videos that decode to the same frames up to x264's own irreproducibility
(:func:`cloak.video.protect.render_video`), and report the broken file without stopping.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import lfw_photos, shared_data, video_people_args

from cloak.cli import main
from cloak.video.reading import iter_frames
from evaluation.video_clips import crossing_scene, render_clip, write_clip

PEOPLE = ("Colin_Powell", "Serena_Williams")
#: (first actor's photo, second actor's photo, stranger) per clip: people 0/1 or swapped.
CASTS = ((0, 1, "AJ_Cook_0001.jpg"), (1, 0, "Aaron_Eckhart_0001.jpg"),
         (0, 1, "Aaron_Guiel_0001.jpg"))
FRAMES = 20

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(mtcnn, tmp_path_factory) -> dict:
    pytest.importorskip("distributed", reason="the dask engine needs the 'distributed' extra")
    root = tmp_path_factory.mktemp("engine")
    clips = root / "clips"
    clips.mkdir()
    photos = [lfw_photos(p, 1)[0] for p in PEOPLE]
    for k, (a, b, stranger) in enumerate(CASTS):
        scene = render_clip(crossing_scene([photos[a], photos[b]],
                                           shared_data("lfw", "distractors", stranger)),
                            mtcnn, size=(256, 192), frames=FRAMES, seed=k)
        write_clip(scene, clips / f"clip{k}.mp4")
    (clips / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    args = ["video", str(clips), "--json", "-q", "--threads", "1"]
    args += video_people_args(root, PEOPLE)
    out = {}
    for engine in ("local", "dask"):
        result = CliRunner().invoke(main, [*args, "-o", str(root / engine), "--engine", engine])
        out[engine] = result
    return {"root": root, **out}


def decoded(path) -> np.ndarray:
    return np.stack([f.image for f in iter_frames(path, threads=1)])


def test_both_engines_finish_the_batch(runs: dict) -> None:
    for engine in ("local", "dask"):
        result = runs[engine]
        assert result.exit_code == 1, result.output          # the broken file failed ...
        assert "broken.mp4" in result.stderr and "error:" in result.stderr
        summary = json.loads(result.stdout)
        assert summary["failed"] == 1 and summary["engine"] == engine
        assert len(summary["videos"]) == 3                    # ... and the batch went on


def test_same_tracks_and_assignments(runs: dict) -> None:
    local = json.loads(runs["local"].stdout)["videos"]
    dask = json.loads(runs["dask"].stdout)["videos"]
    assert [v["input"] for v in local] == [v["input"] for v in dask]
    for a, b in zip(local, dask, strict=True):
        assert a["frames"] == b["frames"] == FRAMES
        assert a["tracks"] == b["tracks"]    # ids, people, detections, covered frames, scores
        assert a["masked_pixels"] == b["masked_pixels"]     # the same frames to the encoder
        named = sorted(t["person"] for t in a["tracks"] if t["person"] is not None)
        assert named == sorted(PEOPLE)


def test_same_output_frames(runs: dict) -> None:
    root = runs["root"]
    for k in range(len(CASTS)):
        local, dask = decoded(root / "local" / f"clip{k}.mp4"), decoded(root / "dask" /
                                                                           f"clip{k}.mp4")
        source = decoded(root / "clips" / f"clip{k}.mp4")
        assert local.shape == dask.shape == source.shape
        difference = np.abs(local.astype(int) - dask)
        assert difference.mean() < 0.1 and (difference > 2).mean() < 1e-3


def test_missing_dask_is_a_clear_error(monkeypatch, tmp_path) -> None:
    """Without dask.distributed installed, --engine dask says what to install (exit code 2)."""
    import sys

    from cloak.cluster import EngineError
    from cloak.video.engine import VideoJob, run_dask
    from cloak.video.protect import VideoOptions

    monkeypatch.setitem(sys.modules, "distributed", None)      # as if not installed
    with pytest.raises(EngineError, match=r"pip install 'cloak\[distributed\]'"):
        list(run_dask([VideoJob(tmp_path / "a.mp4", tmp_path / "b.mp4")], [], VideoOptions()))

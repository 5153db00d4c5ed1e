"""The benchmarks' stores: round trips, and keys pinned to the folders that records and masks
already stored under results/cache were written to (a changed key would orphan them)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from evaluation.opom.run import record_store
from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.folds import with_extra_surrogates
from evaluation.robustness.run import stores
from evaluation.robustness.settings import RobustnessSettings
from evaluation.store import (
    ArrayCache,
    CloakMaskStore,
    MaskStore,
    RecordStore,
    files_digest,
    key_digest,
)
from evaluation.video.people import mask_store
from evaluation.video.settings import VideoBenchmarkSettings

FILES = [Path(f"d{i}.jpg") for i in range(3)]


def test_key_digest_is_sorted_json():
    assert key_digest({"b": 1, "a": Path("/x")}) == key_digest({"a": "/x", "b": 1})
    assert len(key_digest({})) == 16


def test_benchmark_keys_are_unchanged():
    """The folders the stores use for fixed settings, as the benchmarks wrote them before their
    split into packages (same settings -> same records and masks found again)."""
    opom = BenchmarkSettings(cache_dir=Path("/c"), limit=3, conditions=("clean", "convex"))
    assert record_store(opom, opom.fold_plan(), FILES).folder == Path("/c/runs/d75a4b7f1be0ce0d")
    variant = replace(opom, mode="fast", loo="one", steps=7, n_train=1, eot=True)
    assert record_store(variant, variant.fold_plan(), FILES).folder == Path(
        "/c/runs/ff938e38235ea84d")
    robust = RobustnessSettings(replace(opom, mode="fast"))
    records, masks = stores(robust, robust.opom.fold_plan(), FILES)
    assert records.folder == Path("/c/robustness/runs/196d3daa718a9f64")
    assert masks.folder == Path("/c/masks/d8ab785bbbcdbd54")
    video = VideoBenchmarkSettings(cache_dir=Path("/c"))
    assert mask_store(video, video.folds()).folder == Path("/c/video-masks/4ebc42f54639c058")
    other = VideoBenchmarkSettings(cache_dir=Path("/c"), steps=3, loo="one", seed=2)
    assert mask_store(other, other.folds()).folder == Path("/c/video-masks/2aae570e73dd0031")


def test_extra_surrogates_key_only_when_given():
    """No extra surrogates: the pinned folder; some: a folder of their own (no mix-up)."""
    opom = BenchmarkSettings(cache_dir=Path("/c"), limit=3, conditions=("clean", "convex"))
    none = replace(opom, folds=with_extra_surrogates(opom.fold_plan(), []))
    assert record_store(none, none.fold_plan(), FILES).folder == Path("/c/runs/d75a4b7f1be0ce0d")
    extra = replace(opom, folds=with_extra_surrogates(opom.fold_plan(), ["mobileface"]))
    assert record_store(extra, extra.fold_plan(), FILES).folder != Path(
        "/c/runs/d75a4b7f1be0ce0d")


def test_files_digest(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    assert files_digest([a, b]) != files_digest([b, a])
    before = files_digest([a, b])
    b.write_bytes(b"3")
    assert files_digest([a, b]) != before


def test_array_cache_round_trip(tmp_path):
    cache = ArrayCache(tmp_path, "x-distractors-2", {"files": ["a.jpg", "b.jpg"]})
    assert cache.load(2) is None
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.save(array)
    np.testing.assert_array_equal(cache.load(2), array)
    assert json.loads((tmp_path / "x-distractors-2.json").read_text()) == cache.meta
    assert cache.load(3) is None                                            # other files
    assert ArrayCache(tmp_path, "x-distractors-2", {"files": ["c.jpg"]}).load(2) is None
    (tmp_path / "x-distractors-2.npy").write_bytes(b"broken")
    assert cache.load(2) is None                                            # unreadable


def test_record_store_round_trip(tmp_path):
    store = RecordStore(tmp_path, {"settings": {"seed": 0}})
    assert store.folder == tmp_path / "runs" / key_digest({"settings": {"seed": 0}})
    assert store.load("Ada") is None
    store.save("Ada", {"person": "Ada", "ranks": [0, 3]})
    again = RecordStore(tmp_path, {"settings": {"seed": 0}})
    assert again.load("Ada") == {"person": "Ada", "ranks": [0, 3]} and again.reused == 1
    (again.folder / "Bob.json").write_text("{", encoding="utf-8")
    assert again.load("Bob") is None


def test_cloak_mask_store_checks_the_photos(tmp_path):
    from cloak.mask import Mask

    store = CloakMaskStore(tmp_path, {"config": "a"})
    assert store.folder.parent == tmp_path / "video-masks"
    mask = Mask(torch.zeros(3, 224, 224), eps=8.0, subspace="convex", surrogates=["facenet"],
                person="Ada", seed=0, settings={"photos": "a.jpg,b.jpg"})
    assert store.load("Ada-fast", "a.jpg,b.jpg") is None
    store.save("Ada-fast", mask)
    assert store.load("Ada-fast", "a.jpg,b.jpg").person == "Ada"
    assert store.load("Ada-fast", "a.jpg") is None


def test_mask_store_round_trip(tmp_path):
    store = MaskStore(tmp_path, {"config": "a"})
    mask = torch.linspace(-8, 8, 3 * 224 * 224).reshape(3, 224, 224)
    meta = {"photos": ["x_0001.jpg", "x_0002.jpg"], "surrogates": ["facenet"]}
    assert store.load("x__A", meta) is None
    store.save("x__A", mask, meta, learn_s=12.5)
    loaded, seconds = store.load("x__A", meta)
    torch.testing.assert_close(loaded, mask)
    assert seconds == 12.5 and loaded.dtype == torch.float32
    assert np.load(store.folder / "x__A.npy", allow_pickle=False).shape == (3, 224, 224)
    assert store.load("x__A", {**meta, "surrogates": ["sface"]}) is None   # other surrogates
    assert MaskStore(tmp_path, {"config": "b"}).load("x__A", meta) is None  # other settings
    np.save(store.folder / "x__A.npy", np.zeros((3, 10, 10), np.float32), allow_pickle=False)
    assert store.load("x__A", meta) is None                                 # wrong shape

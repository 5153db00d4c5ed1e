"""The model zoo: registry, fetch through the real registry clients, checksums, cache.

The ``cloak models`` commands are tested in test_cli_models.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from attackers import zoo


@pytest.fixture
def temp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOAK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_names_and_unknown():
    names = [s.name for s in zoo.list_specs()]
    for want in ("facenet", "dlib-resnet", "dlib-native", "sface", "mobilefacenet", "faceres",
                 "mtcnn"):
        assert want in names
    with pytest.raises(zoo.UnknownModelError, match="valid names: facenet"):
        zoo.get_spec("nope")


def test_cache_dir_env_override(temp_cache):
    assert zoo.cache_dir() == temp_cache


@pytest.mark.data
def test_fetch_verify_reuse_and_corruption(temp_cache):
    """mtcnn (the smallest package) fetched with pip, reused, re-fetched when corrupted."""
    files = zoo.fetch("mtcnn")
    assert set(files) == {"pnet", "rnet", "onet"}
    spec = zoo.get_spec("mtcnn")
    for key, path in files.items():
        assert zoo.sha256_of(path) == spec.artifacts[key].sha256
    assert zoo.is_cached(spec)
    # nothing half-written is left behind
    assert not list((temp_cache / "files").glob("*/.partial-*"))

    mtime = files["pnet"].stat().st_mtime_ns
    zoo.fetch("mtcnn")  # reuse: no rewrite
    assert files["pnet"].stat().st_mtime_ns == mtime

    files["onet"].write_bytes(files["onet"].read_bytes()[:1000])  # truncated = corrupted
    assert not zoo.is_cached(spec)
    zoo.fetch("mtcnn")
    assert zoo.is_cached(spec)


def test_checksum_mismatch_names_file_and_both_hashes(temp_cache):
    spec = zoo.get_spec("mtcnn")
    good = spec.artifacts["pnet"]
    bad = dataclasses.replace(good, sha256="0" * 64)
    with pytest.raises(zoo.ChecksumError) as err:
        zoo.fetch_package(good.package, [bad], None)
    msg = str(err.value)
    assert "pnet.pt" in msg and "0" * 64 in msg and good.sha256 in msg
    assert not (temp_cache / "files" / good.package.key / "pnet.pt").exists()


def test_registry_failure_names_command_and_manual_route(temp_cache):
    pkg = zoo.Package("pip", "facenet-pytorch", "0.0.0.404", "MIT")
    art = zoo.Artifact(pkg, "facenet_pytorch/data/pnet.pt", "0" * 64, 1)
    with pytest.raises(zoo.FetchError) as err:
        zoo.fetch_package(pkg, [art], None)
    msg = str(err.value)
    assert "pip download" in msg and "facenet-pytorch==0.0.0.404" in msg
    assert "by hand" in msg and str(temp_cache) in msg

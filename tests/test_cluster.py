"""The shared Dask engine (cloak.cluster): a clear error without dask.distributed, tasks in
order with the shared data sent once, the local cluster closed afterwards."""

from __future__ import annotations

import sys

import pytest

from cloak.cluster import EngineError, dask_client, require_dask, submit_tasks


def scaled(item: int, factor: int, offsets: list[int]) -> int:
    return item * factor + sum(offsets)


def test_missing_dask_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)      # as if not installed
    with pytest.raises(EngineError, match=r"pip install 'cloak\[distributed\]'"):
        require_dask()
    with pytest.raises(EngineError), dask_client():
        pass


def test_workers_must_be_positive() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="at least 1"), dask_client(workers=0):
        pass


def test_tasks_run_in_order_with_shared_data() -> None:
    pytest.importorskip("distributed")
    with dask_client(workers=1) as client:
        futures = submit_tasks(client, "cloak-test", scaled, [1, 2, 3], [10, [1, 2]])
        assert [f.result() for f in futures] == [13, 23, 33]
        assert [f.key for f in futures] == ["cloak-test-0", "cloak-test-1", "cloak-test-2"]
        cluster = client.cluster
    assert cluster.status.name == "closed"

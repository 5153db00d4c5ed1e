"""The distributed engine that ``cloak video`` and ``cloak protect`` share: a Dask cluster.

``--engine local`` runs the work in this process; ``--engine dask`` runs it on a
``dask.distributed`` cluster: by default a ``LocalCluster`` of worker processes with one Dask
thread each (:func:`dask_client`), or any running scheduler by address. Data every task needs
(the enrolled people, the mask, the options) is scattered once to every worker
(:func:`submit_tasks`); models are loaded once per worker process (:func:`process_model`).
Dask schedules; nothing here does. Needs the ``distributed`` extra
(``pip install 'cloak[distributed]'``).

>>> # with dask_client(workers=2) as client:
>>> #     for future in submit_tasks(client, "cloak-job", work, items, shared):
>>> #         print(future.result())
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["ENGINES", "EngineError", "dask_client", "process_model", "require_dask",
           "submit_tasks", "task_submitter"]

#: The engines ``--engine`` offers.
ENGINES = ("local", "dask")

#: Dask's settings of the environment its worker processes start with.
_SPAWN_ENV = "distributed.nanny.pre-spawn-environ"


class EngineError(RuntimeError):
    """The requested engine cannot run (its package is missing, or no cluster)."""


def require_dask() -> None:
    """Raise :class:`EngineError`, saying what to install, when ``dask.distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise EngineError("--engine dask needs dask.distributed: pip install "
                          "'cloak[distributed]' (or 'dask[distributed]')") from None


@contextmanager
def dask_client(workers: int = 2, address: str | None = None) -> Iterator[Client]:
    """A client of a running scheduler, or of a ``LocalCluster`` started (and closed) here.

    Args:
        workers: worker processes of the ``LocalCluster`` started when ``address`` is None
            (one Dask thread each; glibc's default memory trimming, not Dask's).
        address: a running scheduler (``"tcp://host:8786"``) to use instead; its workers need
            cloak installed and the model cache (``CLOAK_CACHE``) reachable.

    Raises:
        EngineError: ``dask.distributed`` is not installed.
        ValueError: ``workers`` is less than 1.
    """
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cluster: Any = None
    if address is None:
        # glibc's default trimming: Dask's MALLOC_TRIM_THRESHOLD_ makes torch's many
        # allocations of this work return memory to the system and fault it back in, about
        # twice as slow
        with dask.config.set({f"{_SPAWN_ENV}.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with Client(address or cluster) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def task_submitter(client: Client, name: str, function: Callable[..., Any],
                   shared: Sequence[Any] = ()) -> Callable[[Any], Future]:
    """A function that submits one task ``function(item, *shared)`` per call, keys
    ``"<name>-<index>"`` in call order; ``shared`` is sent once per worker, now.

    Args:
        client: from :func:`dask_client`.
        name: prefix of the tasks' keys.
        function: a module-level function (workers import it by name).
        shared: further arguments of every task, scattered to every worker once (a list is
            scattered element by element and arrives as a list).
    """
    scattered = [client.scatter(value, broadcast=True) for value in shared]
    count = itertools.count()
    return lambda item: client.submit(function, item, *scattered, pure=False,
                                      key=f"{name}-{next(count)}")


def submit_tasks(client: Client, name: str, function: Callable[..., Any],
                 items: Sequence[Any], shared: Sequence[Any] = ()) -> list[Future]:
    """One task ``function(item, *shared)`` per item, all submitted now, in order
    (:func:`task_submitter`)."""
    submit = task_submitter(client, name, function, shared)
    return [submit(item) for item in items]


@functools.cache
def process_model(name: str, device: str = "cpu") -> Any:
    """Zoo model ``name`` on ``device``, loaded once per process (each Dask worker loads its
    own)."""
    import attackers

    return attackers.load(name, device=device)

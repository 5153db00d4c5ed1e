"""Overlap decoding and encoding with the work between them: one helper thread each.

FFmpeg (decoding, colour conversion) and x264 (encoding) release the GIL, and so do torch's
operators, so a decoder running ahead in one thread and an encoder catching up in another keep
both cores busy while the main thread detects faces or pastes masks. Queues are bounded, so
memory stays at a few frames; errors in a helper thread are raised in the caller.

>>> list(prefetch(iter(range(5)), depth=2))
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Background", "prefetch"]

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


def prefetch(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``items`` in a helper thread, up to ``depth`` items ahead of the caller.

    Args:
        items: an iterator (for example a generator reading a file); it is closed in the
            helper thread when the caller stops early.
        depth: items held ready at most, at least 1.

    Yields:
        the items of ``items`` in order; an exception raised by ``items`` is raised here.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as err:  # handed to the caller, who raises it
            offer((_DONE, err))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="cloak-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = ready.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        worker.join()


class Background:
    """Run calls of ``fn`` in a helper thread, in the order given.

    Use as a context manager: leaving the block normally waits for the calls still queued;
    leaving it by an exception drops them. An exception raised by ``fn`` is raised by the next
    :meth:`put` or by the exit.

    Args:
        fn: the function to call, for example ``writer.write_images``.
        depth: calls queued at most before :meth:`put` waits, at least 1.
    """

    def __init__(self, fn: Callable[..., object], depth: int = 4) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._fn = fn
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._worker = threading.Thread(target=self._run, name="cloak-background", daemon=True)
        self._worker.start()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abort.set()
        self._queue.put(_DONE)
        self._worker.join()
        if exc_type is None and self._error is not None:
            raise self._error

    def put(self, *args: object) -> None:
        """Queue ``fn(*args)``; raise the error of an earlier call if there was one."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(args, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is _DONE:
                return
            if self._error is not None or self._abort.is_set():
                continue  # drain: a failed or abandoned run makes no more calls
            try:
                self._fn(*args)
            except BaseException as err:  # raised in the caller's thread
                self._error = err

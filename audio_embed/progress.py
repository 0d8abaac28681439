"""Progress reporting, cancellation and background prefetch for long calls."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from attrs import frozen

from audio_embed.errors import Cancelled

__all__ = ["CancelToken", "ProgressCallback", "ProgressEvent", "prefetch"]

T = TypeVar("T")


@frozen
class ProgressEvent:
    """One progress report: ``done`` of ``total`` (None when unknown) ``unit``s."""

    stage: str
    source: str
    done: float
    total: float | None = None
    unit: str = "s"


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Set from any thread (a signal handler, a GUI button) to stop a long call.

    The call raises :class:`~audio_embed.Cancelled` at its next check, leaving
    no partial output or cache entry behind.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled("The operation was cancelled.")


_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Exceptions raised by the producer are re-raised in the consumer. When the
    consumer stops early (an exception, a cancellation), the producer stops
    at its next item.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="audio_embed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # drain so a producer blocked on put() sees the stop flag
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass

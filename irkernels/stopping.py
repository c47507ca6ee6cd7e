"""Ctrl-C and SIGTERM as a request to stop at the next step boundary, so that a long stage writes
its checkpoint of the last finished step before it exits and a rerun continues from there.

A step interrupted in the middle (half an optimizer update, a sampler that has drawn the next
batch) cannot be checkpointed consistently; a stage's loop asks ``requested`` after each step,
writes its checkpoint when it is true and raises ``KeyboardInterrupt``, which the command line
turns into "interrupted; run the same command again to resume" (exit 130). A second Ctrl-C stops
at once (the previous checkpoint is then what a rerun finds). Schedulers send SIGTERM before they
kill a job: it is handled the same way.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for since the stage began (``requested``), and by which signal."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def interrupt(self, what: str) -> KeyboardInterrupt:
        """The exception a stage raises once its checkpoint is written."""
        name = signal.Signals(self.signal).name if self.signal is not None else "a stop request"
        return KeyboardInterrupt(f"{name}: {what}")


@contextmanager
def stop_at_step_boundary() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the returned request's ``requested`` instead of
    raising (the first time; a second one raises ``KeyboardInterrupt`` at once); the previous
    handlers come back after it. Outside the main thread signals cannot be caught: the request
    then never fires and a signal acts as it did before."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum, frame) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signal = signum

    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["StopRequest", "stop_at_step_boundary"]

"""SIGINT and SIGTERM as a request to stop: the loop saves its checkpoint at the next step, then stops.

A second Ctrl-C (SIGINT) means "stop now, without a checkpoint". SIGTERM never escalates: a process whose
parent died may be sent it twice (by the kernel and by its own watch on the parent), and it must still stop at
a checkpoint."""

from __future__ import annotations

import contextlib
import signal


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so it can checkpoint first."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.received == signal.SIGINT and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = self.received or signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

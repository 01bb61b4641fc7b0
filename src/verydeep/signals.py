"""SIGINT and SIGTERM as a request to stop: the loop saves its checkpoint at the next step, then stops."""

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
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

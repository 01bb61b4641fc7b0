"""Child processes that live and die together: the one way ``train --procs``, ``reproduce``'s workers and
``bench --procs`` start and watch the processes they need.

The parent's side is a :class:`Family`. It starts each child (a command, or a function in a fresh interpreter) in
a session of its own, so that a Ctrl-C at the terminal reaches the parent alone, which passes it on to every child
once. It looks at every child at every tick; when one ends badly it stops the others (SIGTERM: a training process
checkpoints at its next step) and kills whatever still runs ``GRACE`` seconds later, so that none waits on a dead
peer until a collective's timeout. Each ending is described in words: "process 1 of 2 was killed by SIGKILL".

The child's side is :func:`tie_to_parent`: a child stops when its parent dies, by any means. The kernel sends it
SIGTERM when the parent goes (Linux's PR_SET_PDEATHSIG), and, needing no such feature, a thread of the child sees
the end of a pipe that only the parent holds open. SIGTERM is a stop request: a training child saves its
checkpoint at the next step and exits; one still running ``STOP_DEADLINE`` seconds later kills itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE = 5.0  # seconds the others have to stop after one child failed, before they are killed
STOP_DEADLINE = 20.0  # seconds a child whose parent died has to checkpoint and exit, before it kills itself
TICK = 0.1  # seconds between looks at the children

LIFELINE = "VERYDEEP_LIFELINE"  # a child started as a command: its end of the parent's pipe, and the parent's pid
ERRORS = "VERYDEEP_ERRORS"  # a file where a child writes the traceback of an error it did not expect

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def ending_words(code: int) -> str:
    """How a process ended, from its exit status (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return "finished" if code == 0 else f"exited with status {code}"


@dataclass(frozen=True)
class Ending:
    """How one child ended: its name, exit status (negative: killed by that signal) and last error line."""

    name: str
    code: int
    detail: str = ""
    stopped: bool = False  # stopped by the family (after another's failure), not a failure of its own

    def describe(self) -> str:
        return f"{self.name} {ending_words(self.code)}" + (f": {self.detail}" if self.detail else "")

    @property
    def exit_status(self) -> int:
        """A shell's exit status for it: 128 + the signal for a kill."""
        return 128 - self.code if self.code < 0 else self.code


class Child:
    """One started child: a command (``subprocess.Popen``) or a function (``multiprocessing.Process``)."""

    def __init__(self, name: str, handle, errors: Path, stderr=None):
        self.name, self.handle, self.errors, self.stderr = name, handle, errors, stderr
        self.signalled: set[int] = set()  # signals the family sent it

    @property
    def pid(self) -> int:
        return self.handle.pid

    @property
    def sentinel(self) -> int | None:
        """A file descriptor that becomes ready when a function child ends (None for a command)."""
        return getattr(self.handle, "sentinel", None)

    def poll(self) -> int | None:
        if isinstance(self.handle, subprocess.Popen):
            return self.handle.poll()
        return self.handle.exitcode  # polls without waiting

    def send(self, sig: int) -> None:
        """``sig`` to the child, if it still runs."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            self.signalled.add(sig)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(min(TICK, max(deadline - time.monotonic(), 0)))
        return code

    def traceback(self) -> str:
        """The traceback of an error the child did not expect, if it wrote one."""
        try:
            return self.errors.read_text(errors="replace").strip()
        except OSError:
            return ""

    def last_line(self) -> str:
        """The child's last error line: its traceback's, else its captured stderr's."""
        text = self.traceback()
        if not text and self.stderr is not None:
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def ending(self, stopped: bool = False) -> Ending:
        code = self.poll()
        assert code is not None, f"{self.name} still runs"
        return Ending(self.name, code, self.last_line() if code != 0 else "", stopped)


class Family:
    """A parent's children, tied to it: they stop when it dies, and it stops them all when one fails.

    Use as a context manager: leaving it stops and reaps every child still running, whatever happened.
    """

    def __init__(self, grace: float = GRACE):
        self.grace = grace
        self.children: list[Child] = []
        self.context = multiprocessing.get_context("spawn")  # a fresh interpreter, never a fork of our threads
        self.lifeline_child, self.lifeline = self.context.Pipe(duplex=False)  # children read; only we write
        self.folder = tempfile.TemporaryDirectory(prefix="verydeep-children-")
        self.cause: Ending | None = None  # how the first child that failed ended ...
        self.culprit: Child | None = None  # ... and which it was
        self.failed_at: float | None = None
        self.reaped: set[int] = set()

    def __enter__(self) -> Family:
        return self

    def __exit__(self, *exc) -> None:
        for child in self.children:
            if not child.signalled:
                child.send(signal.SIGTERM)
        for child in self.children:
            if child.wait(self.grace) is None:
                child.send(signal.SIGKILL)
                child.wait(self.grace)
        for child in self.children:
            if child.stderr is not None:
                child.stderr.close()
        self.lifeline.close()
        self.lifeline_child.close()
        self.folder.cleanup()

    def _errors(self) -> Path:
        return Path(self.folder.name) / f"errors-{len(self.children)}.txt"

    def command(self, name: str, argv: Sequence[str], env: dict[str, str], capture: bool = False) -> Child:
        """Start ``argv`` as a child; with ``capture`` its stderr goes to a file the family reads its last
        error line from, else to ours."""
        fd = self.lifeline_child.fileno()
        errors = self._errors()
        env = {**env, LIFELINE: f"{fd}:{os.getpid()}", ERRORS: str(errors)}
        stderr = tempfile.TemporaryFile(dir=self.folder.name) if capture else None  # noqa: SIM115 -- closed on exit
        handle = subprocess.Popen(list(argv), env=env, stderr=stderr, pass_fds=(fd,), start_new_session=True)
        return self._add(Child(name, handle, errors, stderr))

    def function(self, name: str, target: Callable, args: tuple = ()) -> Child:
        """Start ``target(*args)`` in a fresh interpreter, tied to this process."""
        errors = self._errors()
        handle = self.context.Process(target=run_tied, args=(self.lifeline_child, os.getpid(), target, args), name=name)
        handle.start()
        return self._add(Child(name, handle, errors))

    def _add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def stop_all(self, sig: int) -> None:
        for child in self.children:
            child.send(sig)

    def reap(self) -> list[tuple[Child, Ending]]:
        """The children that have ended since the last call, looking at every one of them. The first to end
        badly becomes the ``cause``; the others are then asked to stop, and killed after the grace."""
        ended = []
        for child in self.children:
            if child.pid in self.reaped or child.poll() is None:
                continue
            self.reaped.add(child.pid)
            ending = child.ending(stopped=self.cause is not None or bool(child.signalled))
            ended.append((child, ending))
        # of several found in one look, the one killed by a signal nobody here sent is the likelier cause
        for child, ending in sorted(ended, key=lambda ce: ce[1].code >= 0):
            if self.cause is None and ending.code != 0 and not child.signalled:
                self.cause, self.culprit, self.failed_at = ending, child, time.monotonic()
                self.stop_all(signal.SIGTERM)
        if self.failed_at is not None and time.monotonic() - self.failed_at > self.grace:
            self.stop_all(signal.SIGKILL)
        return ended

    def wait(self) -> list[Ending]:
        """Every child's ending, passing SIGINT and SIGTERM on to each child once meanwhile."""

        def forward(signum, frame):
            self.stop_all(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        endings: dict[int, Ending] = {}
        try:
            while len(endings) < len(self.children):
                for child, ending in self.reap():
                    endings[child.pid] = ending
                time.sleep(TICK)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return [endings[c.pid] for c in self.children]


# The child's side --------------------------------------------------------------------------------------------


def run_tied(lifeline, parent: int, target: Callable, args: tuple) -> None:
    """A function child: in a session of its own (a Ctrl-C at the terminal reaches only the parent, which
    passes it on once), tied to its parent, then ``target(*args)``."""
    os.setsid()
    tie_to_parent(lifeline.fileno(), parent)
    target(*args)


def tie_from_environment() -> None:
    """A command child (``verydeep ...`` started by a Family): tie it to the parent its environment names."""
    value = os.environ.pop(LIFELINE, "")
    if value:
        fd, _, parent = value.partition(":")
        tie_to_parent(int(fd), int(parent))


def tie_to_parent(lifeline: int, parent: int) -> None:
    """Stop this process when ``parent`` dies: SIGTERM from the kernel, and from a thread that sees the end of
    ``lifeline``, the pipe only the parent writes to; then a kill, should it still run ``STOP_DEADLINE`` later."""
    set_parent_death_signal(signal.SIGTERM)
    # a parent that died before the kernel was told has closed its end already: the thread sees that at once
    threading.Thread(target=watch_lifeline, args=(lifeline,), name="verydeep-lifeline", daemon=True).start()


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` when the parent dies; False where the OS has no such request."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_lifeline(fd: int) -> None:
    """Block until the parent's pipe ends (the parent died: the kernel closed its end), then stop this process."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # a stop request: a training loop checkpoints at its next step
    time.sleep(STOP_DEADLINE)
    os.kill(os.getpid(), signal.SIGKILL)


# The process table (Linux's /proc), for whoever watches processes from outside: tests and the kill trial.


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def write_traceback(text: str) -> bool:
    """In a child: keep an unexpected error's traceback for the parent to report; False if not a child."""
    path = os.environ.get(ERRORS)
    if not path:
        return False
    with contextlib.suppress(OSError):
        Path(path).write_text(text)
    return True

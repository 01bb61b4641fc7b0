"""One training run as several processes on this machine, started the way torchrun starts them.

On a CPU a step's work splits better over processes than over threads: each process runs one thread on its
share of every batch (DistributedDataParallel over gloo on the loopback interface), so no core waits for the
others inside an operator, only once per step for the gradients. ``verydeep train --procs N`` starts the N
processes itself with the environment torchrun gives (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), so everything the training loop does under torchrun holds: rank 0 writes the run
folder, a signal stops every process at the same step with a checkpoint, ``--resume`` continues.

Each process normalises by the statistics of its own share of the batch (BatchNorm per process, as on the
ResNet paper's two GPUs of 64 images each for CIFAR-10); ``--sync-bn`` normalises by the whole batch instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .device import cpu_procs, physical_cores, pick_device

# A process that fails leaves the others waiting in a collective: they are stopped this long after it.
GRACE_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_environment(rank: int, procs: int, port: int) -> dict[str, str]:
    """torchrun's variables for process ``rank`` of ``procs`` on this machine, and one core's threads each."""
    env = dict(os.environ)
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(procs),
        LOCAL_WORLD_SIZE=str(procs),
        GROUP_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        VERYDEEP_LAUNCHED="1",  # the launcher names a failed process itself
    )
    env.setdefault("OMP_NUM_THREADS", str(max(1, physical_cores() // procs)))
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the loopback only: nothing leaves the machine
    return env


def launch(argv: list[str], procs: int, poll: float = 0.2) -> int:
    """``verydeep ARGV`` in ``procs`` processes; the exit status is the first failure's, else 0.

    SIGINT and SIGTERM are passed on to every process (which then checkpoint at the same step and stop); a
    process that fails gets the others stopped, so that none waits on it for the collective timeout.
    """
    port = free_port()
    command = [sys.executable, "-m", "verydeep", *argv]
    with contextlib.ExitStack() as stack:
        # Rank 0 speaks (progress, summary, errors); the others' stderr is shown only if they alone failed.
        # Each child has a session of its own, so that a Ctrl-C reaches it once, from here, not also from the
        # terminal (a second signal means "stop now, without a checkpoint").
        others = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(procs - 1)]
        children = [
            subprocess.Popen(
                command,
                env=child_environment(r, procs, port),
                stderr=None if r == 0 else others[r - 1],
                start_new_session=True,
            )
            for r in range(procs)
        ]
        codes = wait_all(children, poll)
        if codes[0] <= 0:  # rank 0 finished or was stopped from here: a failure elsewhere is told in its words
            for rank, (code, err) in enumerate(zip(codes[1:], others), start=1):
                if code != 0:
                    err.seek(0)
                    lines = err.read().decode(errors="replace").strip().splitlines()
                    last = lines[-1] if lines else f"exit status {code}"
                    print(f"verydeep train: process {rank} of {procs} failed: {last}", file=sys.stderr)
    return next((code for code in codes if code > 0), next((code for code in codes if code != 0), 0))


def wait_all(children: list[subprocess.Popen], poll: float) -> list[int]:
    """Every child's exit status, passing SIGINT and SIGTERM on meanwhile; once one has failed, the rest are
    given ``GRACE_SECONDS`` to finish and then killed."""

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed_at = None
    try:
        while any(child.poll() is None for child in children):
            if failed_at is None and any(child.returncode not in (None, 0) for child in children):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                for child in children:
                    if child.poll() is None:
                        child.kill()
            time.sleep(poll)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return [child.returncode for child in children]


def procs_for(given: int | None, cfg, out: str, resume: bool) -> int:
    """How many processes train ``cfg``: ``given`` (--procs) if any, else $VERYDEEP_PROCS; a resumed run its
    own count; else on a CPU ``cpu_procs`` (one per core where that measured faster), and 1 on a GPU, where
    torchrun starts the processes."""
    if given is not None:
        if given < 1:
            raise ValueError(f"--procs must be at least 1, not {given}")
        if given > 1 and pick_device(cfg.device).type != "cpu":
            raise ValueError("--procs starts CPU processes; on GPUs start one process per GPU with torchrun")
        return given
    if os.environ.get("VERYDEEP_PROCS"):
        return procs_for(int(os.environ["VERYDEEP_PROCS"]), cfg, out, False)
    if resume:
        from .runs import RunDir

        run = RunDir(out).read_record().run
        return run.world_size if run.device == "cpu" else 1
    if pick_device(cfg.device).type != "cpu":
        return 1
    return cpu_procs(cfg.resolved_recipe().batch_size)

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

import os
import socket
import sys
from pathlib import Path

from .device import CPU_PROCS, physical_cores, pick_device
from .processes import Family


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


def launch(argv: list[str], procs: int) -> int:
    """``verydeep ARGV`` in ``procs`` processes; the exit status is 0 when all finished.

    SIGINT and SIGTERM are passed on to every process (which then checkpoint at the same step and stop). When
    one process ends badly the others are stopped (see ``processes.Family``) and one line names it and how it
    ended; should this process die, the others stop by themselves at a checkpoint.
    """
    port = free_port()
    command = [sys.executable, "-m", "verydeep", *argv]
    with Family() as family:
        # Rank 0 speaks (progress, summary, its own errors); the others' stderr is read only for their last line.
        for rank in range(procs):
            family.command(f"process {rank} of {procs}", command, child_environment(rank, procs, port), rank > 0)
        endings = family.wait()
        culprit, cause = family.culprit, family.cause
        if cause is not None:
            trace = culprit.traceback()  # an error it did not expect: shown whole, once
            if trace:
                print(trace, file=sys.stderr)
            if culprit is not family.children[0] or cause.code < 0 or trace:  # else rank 0 said it itself
                print(
                    f"verydeep train: {cause.describe()}; the other processes were stopped. {what_next(argv)}",
                    file=sys.stderr,
                )
            return cause.exit_status
    return next((e.exit_status for e in endings if e.code != 0), 0)


def what_next(argv: list[str]) -> str:
    """After a failure: how to continue the run whose command line is ``argv``."""
    from .runs import RunDir

    out = argv[len(argv) - argv[::-1].index("--out")] if "--out" in argv else None
    if out is not None and RunDir(out).checkpoint.exists():
        return f"Its last checkpoint is kept: `verydeep train --out {out} --resume` continues it"
    return "No checkpoint had been written yet: run the same command again"


def procs_for(given: int | None, cfg, out: str, resume: bool) -> int:
    """How many processes train ``cfg``: ``given`` (--procs) if any, else $VERYDEEP_PROCS; a resumed run its
    own count; else on a CPU ``CPU_PROCS`` (one: see there why), and 1 on a GPU, where torchrun starts the
    processes."""
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
    return CPU_PROCS

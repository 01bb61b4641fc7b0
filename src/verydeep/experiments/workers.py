"""Training an experiment's runs: one after another in this process, or side by side in worker processes (one
per core, each calling ``fit``), each run ending in an ``Outcome`` that says how it ended."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Literal

import torch

from ..config import TrainConfig
from ..device import physical_cores
from ..processes import STOP_DEADLINE, Child, Family, ending_words
from ..registry import get_entry
from ..runs import RunDir
from ..signals import StopSignal
from ..train import Interrupted, fit
from .base import RunSpec, finished

STATUS_EVERY = 30  # seconds between the parent's lines on how far each running worker has got


class ExperimentInterrupted(Exception):
    """A run stopped on a signal; its checkpoint is saved and the same command continues it."""


class ExperimentFailed(Exception):
    """A run failed; the others stopped at a checkpoint. The message names the run and the end of its log."""


@dataclass(frozen=True)
class Outcome:
    """How one run's training ended: ``finished`` (summary.json written), ``interrupted`` (by a signal, its
    checkpoint saved: the same command continues it) or ``failed`` (``detail`` says how)."""

    status: Literal["finished", "interrupted", "failed"]
    detail: str = ""


def train_one(config: TrainConfig, folder: Path) -> Outcome:
    """Train (or continue) one run in this process. An error other than an interruption is raised."""
    try:
        fit(config, folder, resume=RunDir(folder).checkpoint.exists())
    except Interrupted as e:
        return Outcome("interrupted", e.reason)
    return Outcome("finished")


def train_all(planned, jobs: int, log: Callable[[str], None]) -> None:
    """Train the runs of ``planned`` (spec, config, folder) that are not finished; with ``jobs`` > 1 in that many
    worker processes, the runs that start from another's weights once all the others have finished."""
    todo = [(s, c, f) for s, c, f in planned if not finished(f)]
    for spec, _, folder in planned:
        if finished(folder):
            log(f"{spec.label}: already trained in {folder}")
    if jobs <= 1:
        for spec, config, folder in todo:
            log(f"{spec.label}: {'resuming' if RunDir(folder).checkpoint.exists() else 'training'} {config.model} "
                f"in {folder}")  # fmt: skip
            outcome = train_one(config, folder)
            if outcome.status == "interrupted":
                raise ExperimentInterrupted(f"{spec.label}: {outcome.detail}")
        return
    threads = max(1, physical_cores() // jobs)
    for wave in waves(todo):
        Workers(jobs, threads, log).train(wave)


def waves(todo) -> tuple[list, list]:
    """The runs (spec, config, folder) that may train side by side, then those that start from another's
    weights; each the costliest first, so that the last runs to finish are short ones."""
    order = sorted(todo, key=lambda t: -cost(t[1].model))
    return [t for t in order if t[1].init_from is None], [t for t in order if t[1].init_from is not None]


def cost(model: str) -> int:
    """A rough ordering of training cost: the number of weight layers."""
    return get_entry(model).depth


def default_jobs(device: str = "auto") -> int:
    """On a CPU, one single-threaded process per core trains more images a second in total than one process
    with a thread per core (the small convolutions of these nets do not keep many threads busy); on a GPU one."""
    if device != "cpu" and torch.cuda.is_available():
        return 1
    return physical_cores()


def work(config: TrainConfig, folder: Path, threads: int, report) -> None:
    """A worker process (started by ``processes.Family``: in a session of its own, stopped at a checkpoint
    should the parent die): train one run on ``threads`` threads, printing into the run's train.log, and send
    its ``Outcome`` through ``report``. A Ctrl-C at the terminal reaches only the parent, which passes one SIGINT
    on to each worker (a second would stop a worker before its checkpoint is saved)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # set_threads leaves an explicit setting alone
    torch.set_num_threads(threads)
    with open(RunDir(folder).log, "a", buffering=1) as out:
        os.dup2(out.fileno(), sys.stdout.fileno())
        os.dup2(out.fileno(), sys.stderr.fileno())
        try:
            outcome = train_one(config, folder)
        except BaseException as error:  # noqa: BLE001 -- any failure is reported, with its traceback in the log
            traceback.print_exc()
            outcome = Outcome("failed", f"{type(error).__name__}: {error}")
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(OSError):  # a parent that died hears nothing; the checkpoint is what counts
        report.send(outcome)


@dataclass
class Job:
    spec: RunSpec
    folder: Path
    child: Child
    report: multiprocessing.connection.Connection

    def stop(self) -> None:
        """Ask the worker, once, to save its checkpoint and stop."""
        if signal.SIGINT not in self.child.signalled:
            self.child.send(signal.SIGINT)


class Workers:
    """Runs trained side by side, ``jobs`` at a time, in worker processes (``processes.Family``: a fresh
    interpreter each, stopped at a checkpoint if this process dies). A signal to this process stops every worker
    at a checkpoint; so does a worker's failure. Either raises once all workers have ended, so that none is left
    running."""

    def __init__(self, jobs: int, threads: int, log: Callable[[str], None]):
        self.jobs, self.threads, self.log = jobs, threads, log
        self.family = Family()
        self.running: list[Job] = []
        self.outcomes: dict[str, Outcome] = {}
        self.logs: dict[str, Path] = {}

    def train(self, todo) -> None:
        waiting = list(todo)
        last_status = time.perf_counter()
        with StopSignal() as stop, self.family:
            try:
                while waiting or self.running:
                    stopping = stop.received is not None or any(o.status != "finished" for o in self.outcomes.values())
                    while waiting and len(self.running) < self.jobs and not stopping:
                        self.start(*waiting.pop(0))
                    if stopping:
                        waiting.clear()
                        for job in self.running:
                            job.stop()
                    self.collect(timeout=1.0)
                    if self.running and time.perf_counter() - last_status > STATUS_EVERY:
                        self.log("; ".join(f"{job.spec.label} {progress(job.folder)}" for job in self.running))
                        last_status = time.perf_counter()
            finally:  # an error here, or a second signal: the workers still stop at a checkpoint (or are
                for job in self.running:  # killed, after the family's grace, on leaving it)
                    job.stop()
                for job in self.running:
                    job.child.wait(STOP_DEADLINE)
        self.raise_for_outcomes(stop.received is not None)

    def start(self, spec: RunSpec, config: TrainConfig, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        verb = "resuming" if RunDir(folder).checkpoint.exists() else "training"
        self.log(f"{spec.label}: {verb} {config.model} in {folder} (log: {RunDir(folder).log})")
        receive, send = self.family.context.Pipe(duplex=False)
        child = self.family.function(spec.label, work, (config, folder, self.threads, send))
        send.close()  # the worker holds the sending end: its death without a word reads as end-of-file
        self.running.append(Job(spec, folder, child, receive))

    def collect(self, timeout: float) -> None:
        """Record the outcome of each worker that has ended."""
        ready = wait([job.report for job in self.running], timeout=timeout)
        for job in [j for j in self.running if j.report in ready]:
            try:
                outcome = job.report.recv()
            except EOFError:  # killed (out of memory, SIGKILL) before it could say
                job.child.wait(STOP_DEADLINE)
                code = job.child.poll()
                outcome = Outcome(
                    "failed", f"its worker {ending_words(code) if code is not None else 'stopped answering'}"
                )
            job.child.wait(STOP_DEADLINE)
            self.running.remove(job)
            self.outcomes[job.spec.label] = outcome
            self.logs[job.spec.label] = RunDir(job.folder).log
            self.log(f"{job.spec.label}: {outcome.status}" + (f" ({outcome.detail})" if outcome.detail else ""))

    def raise_for_outcomes(self, signalled: bool) -> None:
        failed = {label: o for label, o in self.outcomes.items() if o.status == "failed"}
        if failed:
            label, outcome = next(iter(failed.items()))
            raise ExperimentFailed(f"{label} failed: {outcome.detail} (its log: {self.logs[label]})")
        if signalled or any(o.status == "interrupted" for o in self.outcomes.values()):
            raise ExperimentInterrupted("interrupted; every run's checkpoint is saved")


def progress(folder: Path) -> str:
    """'step 120/430' from a run's metrics.csv and config.json, for the parent's status line."""
    run = RunDir(folder)
    try:
        total = run.read_record().run.total_steps
    except (OSError, ValueError):
        return "starting"
    return f"step {run.last_step()}/{total}"

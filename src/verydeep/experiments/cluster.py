"""Training an experiment's runs on a Slurm cluster through submitit (``reproduce --executor slurm``).

Every run not yet finished becomes one task of a Slurm job array; a task trains into the shared run folder with
the resume of a local run (so the folder must lie on a filesystem every node sees). A task that Slurm preempts or
that reaches its time limit is requeued by submitit and resumes from its run's checkpoint; one that ends without
a result (``scancel``, a node lost) is resubmitted while the command waits, up to ``Slurm.retries`` times. The
submitted jobs are written down in RUNS/slurm/jobs.json, so that the same command, run again (after
``--no-wait``, or after it was stopped), waits for those still queued instead of submitting them twice.

submitit is an optional dependency (``pip install 'verydeep[slurm]'``); ``Slurm(cluster="local")`` runs the same
path on submitit's local executor where no Slurm is.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from ..runs import atomic_write_bytes
from .base import finished
from .workers import ExperimentFailed, ExperimentInterrupted, train_one, waves

POLL = 5.0  # seconds between looks at the queue


class Submitted(Exception):
    """Runs were submitted and the command was asked not to wait: running it again collects them."""


@dataclass(frozen=True)
class Slurm:
    """Where and how the tasks run. Each field is a flag of ``reproduce`` (``--slurm-partition`` ...)."""

    partition: str | None = None
    time: int = 240  # minutes a task may run before Slurm stops it (it is then requeued and resumes)
    cpus: int = 1  # CPUs per task: the threads its training uses
    gpus: int = 0  # GPUs per task
    parallelism: int = 16  # tasks of an array that run at once
    wait: bool = True  # False: submit and return; the same command again collects the runs
    retries: int = 2  # a task that ends without a result is resubmitted this many times while waiting
    cluster: str = "slurm"  # "local": submitit's local executor, where no Slurm is

    def executor(self, folder: Path):
        try:
            import submitit
        except ImportError:
            raise SystemExit(
                "--executor slurm needs submitit: pip install 'verydeep[slurm]' (or pip install submitit)"
            ) from None
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        options = {"timeout_min": self.time, "cpus_per_task": self.cpus, "name": "verydeep",
                   "slurm_array_parallelism": self.parallelism}  # fmt: skip
        if self.gpus:
            options["gpus_per_node"] = self.gpus
        if self.partition:
            options["slurm_partition"] = self.partition
        executor.update_parameters(**options)
        return executor


def task_class():
    """The task, a submitit ``Checkpointable``: on preemption or time-out submitit calls ``checkpoint``, which
    submits the same call again, and the run resumes from the checkpoint in its folder."""
    import submitit

    class Task(submitit.helpers.Checkpointable):
        def __call__(self, config: TrainConfig, folder: str, threads: int) -> str:
            import torch

            os.environ["OMP_NUM_THREADS"] = str(threads)
            torch.set_num_threads(threads)
            return train_one(config, Path(folder)).status

    return Task


class Ledger:
    """RUNS/slurm/jobs.json: the Slurm job of each run folder submitted, and how often it was submitted."""

    def __init__(self, folder: Path):
        self.path = folder / "jobs.json"
        self.jobs: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def note(self, run: Path, job_id: str) -> None:
        entry = self.jobs.setdefault(str(run), {"job": job_id, "submitted": 0})
        entry["job"], entry["submitted"] = job_id, entry["submitted"] + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(self.jobs, indent=1) + "\n").encode())


def in_squeue(job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` that squeue lists (pending, running, requeued), arrays expanded."""
    if not job_ids:
        return set()
    listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise SystemExit(f"squeue failed: {listed.stderr.strip() or listed.returncode}; is Slurm reachable here?")
    return set(listed.stdout.split()) & set(job_ids)


def last_error_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["(empty log)"])[-1]


def train_on_slurm(planned, slurm: Slurm, runs_root: Path, log: Callable[[str], None]) -> None:
    """Train the runs of ``planned`` (spec, config, folder) that are not finished as Slurm array tasks, those
    that start from another's weights once all the others have finished; return when every run has finished."""
    folder = (runs_root / "slurm").resolve()
    executor = slurm.executor(folder)
    ledger = Ledger(folder)
    todo = [(s, c, f.resolve()) for s, c, f in planned if not finished(f)]
    for wave in waves(todo):
        if wave:
            Wave(wave, slurm, executor, folder, ledger, log).run()


class Wave:
    """Runs that may train side by side: submitted as one array, watched until each has finished."""

    def __init__(self, todo, slurm: Slurm, executor, folder: Path, ledger: Ledger, log):
        self.todo = todo
        self.slurm, self.executor, self.folder, self.ledger, self.log = slurm, executor, folder, ledger, log
        self.live: dict[str, object] = {}  # the submitit jobs this command submitted, by id

    def queued(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` still pending or running."""
        if self.slurm.cluster == "local":  # a local job is known only to the process that started it
            return {j for j in job_ids if j in self.live and not self.live[j].done()}
        return in_squeue(job_ids)

    def run(self) -> None:
        waiting = self.ledger_jobs()
        self.submit([t for t in self.todo if str(t[2]) not in waiting])
        if not self.slurm.wait:
            raise Submitted(f"{len(self.todo)} run(s) queued on Slurm (jobs in {self.ledger.path})")
        shown = None
        while True:
            open_ = [t for t in self.todo if not finished(t[2])]
            if not open_:
                return
            jobs = {str(f): self.ledger.jobs[str(f)]["job"] for _, _, f in open_}
            alive = self.queued(list(jobs.values()))
            ended = [t for t in open_ if jobs[str(t[2])] not in alive and not finished(t[2])]
            resubmit = [t for t in ended if self.ended_without_error(t)]
            self.submit(resubmit)
            status = (f"slurm: {len(self.todo) - len(open_)} of {len(self.todo)} runs finished, "
                      f"{len(alive)} queued or running")  # fmt: skip
            if status != shown:
                self.log(status)
                shown = status
            time.sleep(POLL)

    def ledger_jobs(self) -> set[str]:
        """The run folders whose recorded job is still queued or running: waited for, not submitted again."""
        recorded = {str(f): self.ledger.jobs[str(f)]["job"] for _, _, f in self.todo if str(f) in self.ledger.jobs}
        alive = self.queued(list(recorded.values()))
        for run, job in recorded.items():
            if job in alive:
                self.log(f"{Path(run).name}: Slurm job {job} is still queued or running; waiting for it")
        return {run for run, job in recorded.items() if job in alive}

    def ended_without_error(self, item) -> bool:
        """A task that ended with its run unfinished: True to submit it again (it was cancelled or lost, or it
        stopped at a checkpoint), else raises ExperimentFailed naming its job, its log and its last error."""
        spec, _, run = item
        entry = self.ledger.jobs[str(run)]
        job = self.job(entry["job"])
        result = job.paths.result_pickle
        if result.exists():
            try:
                job.result()
            except Exception:  # noqa: BLE001 -- the task's own error, reported with its log
                raise ExperimentFailed(
                    f"{spec.label}: Slurm job {entry['job']} failed: {last_error_line(job.paths.stderr)} (log: "
                    f"{job.paths.stderr}); the run keeps its last checkpoint in {run}"
                ) from None
        if entry["submitted"] > self.slurm.retries:
            raise ExperimentInterrupted(
                f"{spec.label}: Slurm job {entry['job']} ended without finishing {entry['submitted']} times (log: "
                f"{job.paths.stderr}); its checkpoint is kept: run the same command again to resubmit it"
            )
        self.log(f"{spec.label}: Slurm job {entry['job']} ended before the run finished; submitting it again "
                 "(it resumes from its checkpoint)")  # fmt: skip
        return True

    def job(self, job_id: str):
        import submitit

        if job_id in self.live:
            return self.live[job_id]
        return submitit.SlurmJob(self.folder, job_id)

    def submit(self, items) -> None:
        if not items:
            return
        task = task_class()()
        configs = [config for _, config, _ in items]
        runs = [str(run) for _, _, run in items]
        jobs = self.executor.map_array(task, configs, runs, [self.slurm.cpus] * len(items))
        for (spec, config, run), job in zip(items, jobs):
            self.live[job.job_id] = job
            self.ledger.note(run, job.job_id)
            self.log(f"{spec.label}: submitted as Slurm job {job.job_id} ({config.model} in {run})")

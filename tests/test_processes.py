"""Processes that live and die together: a run killed any way a machine kills it stops whole, says which process
died and how, keeps its last checkpoint, and resumes to the weights of a run never killed.

These kill real processes (SIGKILL, as the out-of-memory killer and a closed terminal do), each wait bounded by a
generous timeout, and read the process table from /proc (skipped where there is none).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from verydeep.cli import main
from verydeep.processes import Family, alive, children_of, ending_words
from verydeep.runs import RunDir, load_checkpoint

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the processes")

# VGG-A at a quarter of the width on 32 px synthetic images: dropout draws random numbers in every forward pass,
# so a resume that did not restore the random state would end with other weights.
VGG = ["--model", "vgg_a", "-o", "width=0.25", "-o", "init=kaiming", "--data", "synthetic", "--image-size", "32"]
VGG += ["--subset", "256", "--val-size", "32", "--batch-size", "32", "--lr", "0.01", "--iters", "40"]
VGG += ["--procs", "2", "--deterministic", "--precision", "fp32", "--checkpoint-every", "2", "--log-every", "2"]
TIMEOUT = 300  # seconds: generous bounds on waits, never a timing assertion


def rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(v.split(b"=", 1)[1]) for v in environ if v.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """``verydeep ARGV`` as a user starts it, stdout and stderr to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "VERYDEEP_PROCS"}  # the tests' pin to one process
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "verydeep", *argv], env=env, stdout=out, stderr=out)


def assert_same_weights(got: RunDir, expected: RunDir) -> None:
    a, b = load_file(expected.weights), load_file(got.weights)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> RunDir:
    """The 2-process VGG run, never interrupted."""
    run = RunDir(tmp_path_factory.mktemp("straight") / "run")
    log = run.path.parent / "log.txt"
    assert start(["train", *VGG, "--out", str(run.path)], log).wait(TIMEOUT) == 0, log.read_text()[-3000:]
    return run


def ranks_started(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the launcher's training processes, once both have started."""
    found: dict[int, int] = {}

    def both():
        found.update({r: p for p in children_of(launcher.pid) if (r := rank_of(p)) is not None})
        assert launcher.poll() is None, "the run ended before its processes were seen"
        return len(found) == 2

    wait_for(both, "both training processes to start")
    return found


def mid_run(run: RunDir, launcher: subprocess.Popen) -> None:
    wait_for(lambda: run.last_step() >= 10 or launcher.poll() is not None, "ten steps")
    assert launcher.poll() is None, "the run ended before it could be killed"


@pytest.mark.parametrize("victim,when", [("launcher", "mid-run"), ("rank 1", "start-up"), ("rank 1", "mid-run")])
def test_a_killed_process_stops_the_whole_run_which_resumes_to_the_weights_of_one_never_killed(
    victim, when, straight, tmp_path
):
    run, log = RunDir(tmp_path / "run"), tmp_path / "log.txt"
    launcher = start(["train", *VGG, "--out", str(run.path)], log)
    ranks = ranks_started(launcher)
    if when == "mid-run":
        mid_run(run, launcher)
    os.kill(launcher.pid if victim == "launcher" else ranks[1], signal.SIGKILL)
    code = launcher.wait(TIMEOUT)
    # nothing of the run is left: the training processes stop by themselves when the launcher dies
    wait_for(lambda: not any(alive(pid) for pid in ranks.values()), "the training processes to stop", 60)
    text = log.read_text()
    if victim == "launcher":
        assert code == -signal.SIGKILL
        assert "stopped by signal at step" in text  # they stopped at a step, with a checkpoint
    else:
        assert code != 0
        assert "verydeep train: process 1 of 2 was killed by SIGKILL" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]  # the peer's failure is not shown as its own
    if run.checkpoint.exists():
        load_checkpoint(run.checkpoint)  # whole
        again = start(["train", "--out", str(run.path), "--resume"], log)
    else:
        again = start(["train", *VGG, "--out", str(run.path)], log)
    assert again.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    assert json.loads(run.summary.read_text())["steps"] == 40
    assert_same_weights(run, straight)


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_ends_the_run_with_one_line(
    tmp_path, monkeypatch, capsys
):
    import verydeep.runs

    argv = ["train", "--model", "resnet20", "--data", "synthetic", "--image-size", "16", "--subset", "128"]
    argv += ["--val-size", "32", "--batch-size", "32", "--iters", "12", "--checkpoint-every", "2"]
    argv += ["--precision", "fp32", "--deterministic"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    saves, real_save = [], torch.save

    def fills_the_disk(obj, f, *args, **kwargs):
        saves.append(obj["step"])
        if obj["step"] == 6:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(verydeep.runs.torch, "save", fills_the_disk)
    run = RunDir(tmp_path / "full")
    capsys.readouterr()
    assert main([*argv, "--out", str(run.path)]) == 4
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("verydeep train:")]  # beside the progress lines
    assert len(said) == 1 and "No space left on device" in said[0] and "Traceback" not in err, err
    assert "the checkpoint of step 4 is kept" in said[0] and "--resume" in said[0]
    assert load_checkpoint(run.checkpoint).step == 4
    assert not [p for p in run.path.iterdir() if ".tmp" in p.name]  # no torn file left beside it
    monkeypatch.setattr(verydeep.runs.torch, "save", real_save)
    assert main(["train", "--out", str(run.path), "--resume"]) == 0
    assert_same_weights(run, RunDir(tmp_path / "straight"))


# The family itself ---------------------------------------------------------------------------------------------


def sleeps_then_exits(seconds: float, code: int) -> None:
    time.sleep(seconds)
    os._exit(code)


def test_every_child_is_looked_at_so_a_later_one_that_dies_stops_the_others(tmp_path):
    # the first child runs on; the second dies: the family notices it, stops the first and names the second
    with Family(grace=2.0) as family:
        first = family.function("process 0 of 2", sleeps_then_exits, (600, 0))
        family.function("process 1 of 2", sleeps_then_exits, (0.5, 3))
        endings = family.wait()
    assert family.cause.describe() == "process 1 of 2 exited with status 3"
    assert endings[0].stopped and endings[0].code == -signal.SIGTERM
    assert not alive(first.pid)


def test_endings_are_told_in_words():
    assert ending_words(-signal.SIGKILL) == "was killed by SIGKILL"
    assert ending_words(0) == "finished" and ending_words(2) == "exited with status 2"


# reproduce's workers --------------------------------------------------------------------------------------------

REPRODUCE = ["reproduce", "degradation", "--preset", "smoke", "--seeds", "1", "--jobs", "2", "--data", "synthetic"]


def reproduce_in(root: Path, log: Path) -> subprocess.Popen:
    return start([*REPRODUCE, "--out", str(root / "degradation"), "--runs", str(root / "runs")], log)


def workers_of(parent: subprocess.Popen) -> list[int]:
    """The worker processes of a running ``reproduce`` (not multiprocessing's resource tracker)."""
    return [p for p in children_of(parent.pid) if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reproduced")
    log = root / "log.txt"
    assert reproduce_in(root, log).wait(TIMEOUT) == 0, log.read_text()[-3000:]
    return root


@pytest.mark.parametrize("victim", ["worker", "parent"])
def test_a_killed_reproduction_leaves_no_worker_and_the_next_one_continues_it(victim, reproduced, tmp_path):
    log = tmp_path / "log.txt"
    parent = reproduce_in(tmp_path, log)
    workers: list[int] = []

    def two_workers():
        workers[:] = workers_of(parent)
        assert parent.poll() is None, log.read_text()[-3000:]
        return len(workers) == 2

    wait_for(two_workers, "two workers")

    def finished():
        return {p.name for p in (tmp_path / "runs").glob("*/summary.json")} if (tmp_path / "runs").exists() else set()

    before = finished()
    os.kill(parent.pid if victim == "parent" else workers[1], signal.SIGKILL)
    code = parent.wait(TIMEOUT)
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to stop", 60)
    if victim == "parent":
        assert finished() == before  # the workers stopped at a checkpoint: none trained its run on headless
    if victim == "worker":
        assert code == 1
        assert "its worker was killed by SIGKILL" in log.read_text(), log.read_text()[-3000:]
    again = reproduce_in(tmp_path, log)
    assert again.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    expected = {p.name: RunDir(p) for p in (reproduced / "runs").iterdir()}
    got = {p.name: RunDir(p) for p in (tmp_path / "runs").iterdir()}
    assert got.keys() == expected.keys() and len(got) == 4
    for name in got:
        assert_same_weights(got[name], expected[name])


def test_the_processes_of_bench_stop_when_it_is_killed(tmp_path):
    log = tmp_path / "log.txt"
    # rounds of two minutes: a process that only stopped when it next spoke to its dead parent would outlive the
    # wait below by far
    argv = ["bench", "--model", "resnet20", "--data", "synthetic", "--procs", "2", "--rounds", "3", "--seconds", "120"]
    parent = start([*argv, "--precision", "fp32"], log)
    found: list[int] = []

    def two_processes():
        found[:] = workers_of(parent)
        assert parent.poll() is None, log.read_text()[-3000:]
        return len(found) == 2

    wait_for(two_processes, "bench's two processes")
    time.sleep(5)  # into the first round
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(TIMEOUT)
    wait_for(lambda: not any(alive(pid) for pid in found), "bench's processes to stop", 30)

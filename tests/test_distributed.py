"""Several processes under torchrun (CPU, gloo) train as one process does with the same global batch."""

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

from verydeep.data import load_data
from verydeep.launch import free_port
from verydeep.runs import RunDir
from verydeep.train import TrainConfig, fit


def torchrun(argv: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    """``verydeep train ARGV`` on ``processes`` local processes, talking over the loopback interface only."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    launcher = ["--nnodes", "1", "--nproc-per-node", str(processes)]
    launcher += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "verydeep", "train", *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_ranks_together_take_and_augment_the_single_process_batch():
    data = load_data("synthetic", subset=331)  # the last global batch is partial
    for world_size in (2, 3):
        single = list(data.batches("train", 16 * world_size, epoch=2, seed=3, drop_last=False))
        ranks = [
            list(data.batches("train", 16, epoch=2, seed=3, rank=r, world_size=world_size, drop_last=False))
            for r in range(world_size)
        ]
        assert [len(batches) for batches in ranks] == [len(single)] * world_size
        for k, (x, y) in enumerate(single):
            for r in range(world_size):
                x_rank, y_rank = ranks[r][k]
                assert torch.equal(x_rank, x[r::world_size]) and torch.equal(y_rank, y[r::world_size])


def assert_same_run(two: RunDir, one: RunDir) -> None:
    """Same weights and BatchNorm statistics, and the same logged loss, error and val evaluation: those are
    summed over the global batch and over the whole val split, which the ranks share out."""
    expected, got = load_file(one.weights), load_file(two.weights)
    assert expected.keys() == got.keys()
    for name in expected:
        close = torch.isclose(got[name], expected[name], rtol=1e-3, atol=1e-4)
        assert close.all(), f"{name}: largest difference {(got[name] - expected[name]).abs().max()}"
    for mine, theirs in zip(two.read_metrics(), one.read_metrics(), strict=True):
        for key in ("step", "train_loss", "train_error", "val_loss", "val_error"):
            a, b = getattr(mine, key), getattr(theirs, key)
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-4), key


# Two steps at lr 0.01, then the tolerance of float rounding: a training step amplifies the rounding
# differences of the one before, so by the third step a single process already drifts further than this
# when it merely changes memory layout (channels_last or not). Without SyncBatchNorm the two-process run
# misses this tolerance fifty times over.
ARGV = ["--model", "resnet20", "--subset", "256", "--val-size", "64", "--batch-size", "32", "--lr", "0.01"]
ARGV += ["--sync-bn", "--deterministic", "--precision", "fp32", "--log-every", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[RunDir, RunDir]:
    """The same two steps on two processes (torchrun) and on one (in this process)."""
    root = tmp_path_factory.mktemp("runs")
    two = RunDir(root / "two")
    torchrun([*ARGV, "--iters", "2", "--out", str(two.path)])
    config = json.loads(two.config.read_text())
    one = RunDir(root / "one")
    fit(TrainConfig.from_dict(config["train"]), one.path, progress=False)
    return two, one


@pytest.mark.fashion_mnist
def test_two_processes_with_sync_bn_reach_the_weights_of_one_with_the_same_global_batch(two_runs):
    two, one = two_runs
    config = json.loads(two.config.read_text())
    assert config["run"]["world_size"] == 2 and config["run"]["micro_batch"] == 16
    assert sorted(p.name for p in two.path.iterdir()) == sorted(p.name for p in one.path.iterdir())
    assert_same_run(two, one)


@pytest.mark.fashion_mnist
def test_a_two_process_run_resumes_as_a_single_process_run_does(two_runs):
    two, one = two_runs
    torchrun(["--out", str(two.path), "--resume", "--iters", "3"])
    fit(TrainConfig.from_dict({**json.loads(one.config.read_text())["train"], "iters": 3}), one.path, resume=True)
    assert json.loads(two.summary.read_text())["steps"] == 3
    assert_same_run(two, one)


def verydeep_train(argv: list[str], log: Path) -> subprocess.Popen:
    """``verydeep train ARGV`` as a user starts it (the command starts its --procs itself), stderr to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "VERYDEEP_PROCS"}  # the tests' pin to one process
    with log.open("a") as stderr:
        command = [sys.executable, "-m", "verydeep", "train", *argv]
        return subprocess.Popen(command, env=env, stdout=stderr, stderr=stderr)


def test_a_two_process_run_stopped_by_a_signal_resumes_to_the_weights_of_one_never_stopped(tmp_path):
    # `train --procs 2` itself, on synthetic images (no data set needed): rank 0 writes the run folder, Ctrl-C
    # to the launcher stops both processes at the same step with a checkpoint, --resume continues on two.
    argv = ["--model", "resnet20", "--data", "synthetic", "--image-size", "16", "--subset", "256"]
    argv += ["--val-size", "64", "--batch-size", "32", "--iters", "30", "--procs", "2", "--deterministic"]
    argv += ["--precision", "fp32", "--checkpoint-every", "1", "--log-every", "5"]
    straight, stopped = RunDir(tmp_path / "straight"), RunDir(tmp_path / "stopped")
    log = tmp_path / "stderr.txt"
    done = verydeep_train([*argv, "--out", str(straight.path)], log)
    assert done.wait(timeout=300) == 0, log.read_text()[-3000:]

    log.write_text("")
    run = verydeep_train([*argv, "--out", str(stopped.path)], log)
    while not stopped.checkpoint.exists() and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=300) == 130, log.read_text()[-3000:]
    assert "--resume" in log.read_text()
    step = torch.load(stopped.checkpoint, weights_only=False)["step"]
    assert 1 <= step < 30 and not stopped.summary.exists()

    resumed = verydeep_train(["--out", str(stopped.path), "--resume"], log)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert json.loads(stopped.config.read_text())["run"]["world_size"] == 2
    assert json.loads(stopped.summary.read_text())["steps"] == 30
    expected, got = load_file(straight.weights), load_file(stopped.weights)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name

    # the log windows after the one the signal cut short are the uninterrupted run's
    def full_windows(run):
        return [(r.step, r.train_loss) for r in run.read_metrics() if r.step - 5 >= step]

    assert full_windows(stopped) == full_windows(straight) and full_windows(straight)

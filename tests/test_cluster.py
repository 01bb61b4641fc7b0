"""`reproduce --executor slurm`: against a real single-node Slurm on this machine (tools/slurm_localhost.sh, as
root, skipped with the reason where it cannot start), and on submitit's local executor where no Slurm is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from verydeep.cli import main
from verydeep.config import TrainConfig
from verydeep.experiments import ExperimentFailed
from verydeep.experiments.base import RunSpec, finished
from verydeep.experiments.cluster import Ledger, Slurm, train_on_slurm
from verydeep.runs import RunDir

pytest.importorskip("submitit")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A single-node Slurm of this machine's CPUs, its state in a folder of the test's own."""
    missing = [tool for tool in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)}: apt-get install -y slurmctld slurmd munge slurm-client")
    if os.geteuid() != 0:
        pytest.skip("the single-node Slurm of these tests starts its daemons as root")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(ROOT / "tools" / "slurm_localhost.sh"), str(folder)], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    if started.returncode != 0:
        pytest.skip(f"the single-node Slurm did not start: {started.stderr.strip()[-300:]}")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("SLURM_CONF", started.stdout.strip())
        yield folder
    subprocess.run([str(ROOT / "tools" / "slurm_localhost.sh"), "--stop", str(folder)], timeout=60)


def one_run(tmp_path: Path, **changes) -> list:
    settings = {"model": "resnet20", "data": "synthetic", "subset": 256, "val_size": 64, "epochs": 1, "log_every": 1,
                "overrides": {"batch_size": 32}}  # fmt: skip
    config = TrainConfig(**(settings | changes))
    return [(RunSpec("ResNet-20", "resnet20"), config, tmp_path / "runs" / "resnet20-one")]


def verdicts(folder: Path) -> list[tuple]:
    summary = json.loads((folder / "summary.json").read_text())
    return [(v["key"], v["outcome"], v.get("values_a"), v.get("values_b")) for v in summary["verdicts"]]


@pytest.mark.slurm
def test_the_smoke_preset_on_slurm_gives_the_local_executors_verdicts_and_trains_nothing_twice(slurm_cluster, tmp_path,
                                                                                               capsys):  # fmt: skip
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    common = ["reproduce", "degradation", "--preset", "smoke", "--data", "synthetic"]
    assert main([*common, "--out", str(local), "--runs", str(local / "runs"), "--jobs", "2"]) == 0
    argv = [*common, "--out", str(slurm), "--runs", str(slurm / "runs"), "--executor", "slurm", "--slurm-time", "10"]
    assert main([*argv, "--no-wait"]) == 0  # submitted: nothing to report yet
    assert "Run the same command again to collect them" in capsys.readouterr().err
    assert not (slurm / "summary.json").exists()
    assert main(argv) == 0  # waits for the jobs already queued, submits nothing twice
    ledger = Ledger(slurm / "runs" / "slurm")
    assert len(ledger.jobs) == 8 and all(entry["submitted"] == 1 for entry in ledger.jobs.values())
    assert verdicts(slurm) == verdicts(local)
    report = (slurm / "report.md").read_text()
    assert "## Verdicts" in report and report.count("seed 1:") == 4


@pytest.mark.slurm
def test_a_task_cancelled_by_scancel_is_submitted_again_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    planned = one_run(tmp_path, epochs=40, checkpoint_every=2)
    _, _, run = planned[0]
    errors, lines = [], []

    def wait_for_it():
        try:
            train_on_slurm(planned, Slurm(time=10), tmp_path / "runs", lines.append)
        except BaseException as error:  # noqa: BLE001 -- reported by the test below
            errors.append(error)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    deadline = time.monotonic() + 180
    while not RunDir(run).checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert RunDir(run).checkpoint.exists(), lines
    first = Ledger(tmp_path / "runs" / "slurm").jobs[str(run.resolve())]["job"]
    subprocess.run(["scancel", first], check=True, timeout=30)
    waiter.join(timeout=600)
    assert not waiter.is_alive() and not errors, (errors, lines)
    entry = Ledger(tmp_path / "runs" / "slurm").jobs[str(run.resolve())]
    assert entry["submitted"] == 2 and entry["job"] != first and finished(run)
    assert any(f"Slurm job {first} ended before the run finished" in line for line in lines)
    record = RunDir(run).read_record()
    assert record.resumed and record.resumed[0]["step"] > 0  # the second task went on from the first's checkpoint


def test_submitits_local_executor_trains_a_run_where_no_slurm_is(tmp_path):
    planned = one_run(tmp_path)
    lines = []
    train_on_slurm(planned, Slurm(cluster="local"), tmp_path / "runs", lines.append)
    assert finished(planned[0][2]) and any("submitted as Slurm job" in line for line in lines)
    lines.clear()
    train_on_slurm(planned, Slurm(cluster="local"), tmp_path / "runs", lines.append)  # finished: nothing to do
    assert lines == []


def test_a_failed_task_is_named_with_its_job_its_log_and_its_last_error(tmp_path):
    planned = one_run(tmp_path, data="cifar10", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(ExperimentFailed) as failed:
        train_on_slurm(planned, Slurm(cluster="local"), tmp_path / "runs", lambda line: None)
    message = str(failed.value)
    job = Ledger(tmp_path / "runs" / "slurm").jobs[str(planned[0][2].resolve())]["job"]
    assert f"ResNet-20: Slurm job {job} failed: " in message and "nowhere" in message
    assert f"(log: {tmp_path / 'runs' / 'slurm'}" in message and message.count("\n") == 0


def test_slurm_options_come_from_the_config_file_with_the_flags_over_them(tmp_path, capsys):
    from verydeep.cli import build_parser, slurm_of

    settings = tmp_path / "slurm.json"
    settings.write_text(json.dumps({"partition": "gpu", "time": 60, "parallelism": 4}))
    args = build_parser().parse_args(["reproduce", "degradation", "--executor", "slurm", "--slurm-config",
                                      str(settings), "--slurm-time", "30", "--no-wait"])  # fmt: skip
    assert slurm_of(args) == Slurm(partition="gpu", time=30, parallelism=4, wait=False)
    settings.write_text(json.dumps({"partitions": "gpu"}))
    with pytest.raises(SystemExit, match="unknown key"):
        slurm_of(args)
    local = build_parser().parse_args(["reproduce", "degradation"])
    assert slurm_of(local) is None

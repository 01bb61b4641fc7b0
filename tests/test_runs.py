"""The run folder survives a crash at any moment."""

import dataclasses
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from verydeep.config import TrainConfig
from verydeep.recipes import get_recipe, override
from verydeep.runs import MetricsRow, RunDir, atomic_write_bytes, load_checkpoint, save_atomic
from verydeep.trained import Preprocessing

WRITER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from verydeep.config import TrainConfig
    from verydeep.runs import Checkpoint, save_atomic
    path = Path(sys.argv[1])
    for i in range(1, 1_000_000):
        payload = torch.full((4_000_000,), float(i))  # 16 MB: each write takes a while
        state = Checkpoint("resnet20", {}, TrainConfig("resnet20"), {"payload": payload}, {}, {}, torch.get_rng_state(),
                           None, i, 0.0, 0, None, 0.0, None)
        save_atomic(state.to_dict(), path)
        print(i, flush=True)
    """
)


def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "checkpoint.pt"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip().isdigit()  # one checkpoint is complete
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob(".checkpoint.pt.tmp*")) and time.monotonic() < deadline:
                time.sleep(0.001)  # until the next write is under way
            writing = bool(list(tmp_path.glob(".checkpoint.pt.tmp*")))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert writing
        state = load_checkpoint(path)
        assert state.step >= 1
        assert torch.equal(state.model["payload"], torch.full((4_000_000,), float(state.step)))
        for leftover in tmp_path.glob(".checkpoint.pt.tmp*"):
            leftover.unlink()  # what a kill leaves behind; the next run writes its own


def test_a_truncated_checkpoint_is_reported_with_the_fix(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"verydeep": {}, "x": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="damaged or truncated.*remove it"):
        load_checkpoint(path)


def test_metrics_are_appended_and_truncated_on_resume(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics([MetricsRow(50, 0.5, 0.1, train_loss=1.0), MetricsRow(100, 1, 0.1, val_error=0.3,
                                                                          images_per_second=900.0)])  # fmt: skip
    run.append_metrics([MetricsRow(150, 1.5, 0.1, train_loss=0.5)])
    run.truncate_metrics(100)
    rows = run.read_metrics()
    assert [r.step for r in rows] == [50, 100]
    assert rows[1].val_error == 0.3 and rows[1].train_loss is None
    assert [r.is_epoch for r in rows] == [False, True]


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt to resume from"):
        RunDir(tmp_path).load_checkpoint()


class Crash(Exception):
    """Stands for the process dying at this point."""


def test_a_crash_between_writing_and_renaming_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_bytes(path, b"old and complete")

    def crash(src, dst):
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Crash):  # the new bytes only ever reach ``path`` by the rename
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old and complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # the temporary file went too


def test_the_new_file_is_on_disk_before_it_is_renamed_into_place_and_the_rename_after(tmp_path, monkeypatch):
    """write, fsync the temporary file, rename it over the old one, fsync the folder: in that order."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst), Path(src).read_bytes(), Path(dst).read_bytes()))
        real_replace(src, dst)

    path = tmp_path / "checkpoint.pt"
    save_atomic({"verydeep": {}, "step": 1}, path)
    old = path.read_bytes()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_atomic({"verydeep": {}, "step": 2}, path)
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    (_, tmp), (_, src, dst, new, before), (_, folder) = events
    assert tmp == src and Path(tmp).parent == tmp_path and tmp != str(path)
    assert dst == str(path) and before == old  # the old checkpoint stays whole until the rename
    assert torch.load(io.BytesIO(new), weights_only=True)["step"] == 2  # the complete new one was renamed
    assert folder == str(tmp_path)
    assert torch.load(path, weights_only=True)["step"] == 2


def test_a_run_refused_at_its_set_up_leaves_no_empty_folder(tmp_path):
    """The lock creates the folder; a run that stops before writing anything (bad data, say) takes it away again,
    while a folder that existed before, or holds anything, stays."""
    with pytest.raises(ValueError), RunDir(tmp_path / "new").lock():
        raise ValueError("unknown data set")
    assert not (tmp_path / "new").exists()
    with RunDir(tmp_path / "kept").lock():
        (tmp_path / "kept" / "metrics.csv").write_text("step\n")
    assert (tmp_path / "kept" / "metrics.csv").exists() and not (tmp_path / "kept" / ".lock").exists()
    (tmp_path / "mine").mkdir()
    with RunDir(tmp_path / "mine").lock():
        pass
    assert (tmp_path / "mine").is_dir()


def test_a_file_that_is_not_a_verydeep_checkpoint_is_named_as_such(tmp_path):
    for i, obj in enumerate(({"model": torch.zeros(2)}, [1, 2])):
        path = tmp_path / f"other{i}.pt"
        torch.save(obj, path)
        with pytest.raises(ValueError, match=f"{path} is not a verydeep checkpoint"):
            load_checkpoint(path)
    truncated = tmp_path / "truncated.pt"
    torch.save({"verydeep": {}, "x": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"truncated \((RuntimeError|EOFError|UnpicklingError)\)"):
        load_checkpoint(truncated)


def test_the_commit_recorded_is_the_packages_own_wherever_the_run_is_started(tmp_path, monkeypatch):
    from verydeep.runs import git_commit

    source = Path(__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the tests do not run from a git checkout")
    monkeypatch.chdir(tmp_path)  # not a repository: the commit comes from where the package lies
    assert git_commit().removesuffix("+dirty") == head.stdout.strip()


def test_each_resumption_is_recorded_with_its_position_and_environment(tmp_path):
    run = RunDir(tmp_path)
    shutil.copy(WRITTEN_BY_0_1 / "config.json", run.config)
    run.record_resumption({"step": 12, "total_steps": 40})
    run.record_resumption({"step": 30, "total_steps": 40})
    resumed = run.read_record().resumed
    assert [(r["step"], r["total_steps"]) for r in resumed] == [(12, 40), (30, 40)]
    assert all("torch" in r["environment"] for r in resumed)


WRITTEN_BY_0_1 = Path(__file__).parent / "data" / "run-0.1.0"  # config.json, summary.json, metrics.csv of a short run


def test_a_run_folder_written_by_version_0_1_loads_through_the_record():
    run = RunDir(WRITTEN_BY_0_1)
    record, summary, rows = run.read_record(), run.read_summary(), run.read_metrics()
    asked = TrainConfig(model="resnet20", data="synthetic", overrides={"batch_size": 32}, subset=256, val_size=64)
    assert record.train.identity() == asked.identity()  # the command line wrote the override as "32"
    assert (record.train.iters, record.train.precision, record.train.log_every) == (4, "fp32", 2)
    assert record.recipe == override(get_recipe("resnet_cifar"), batch_size=32)
    assert record.data.image_size == 32 and record.data.sizes == {"train": 256, "val": 64, "test": 512}
    assert torch.tensor(record.mean).shape == (3, 32, 32)  # the per-pixel mean of the resnet_cifar recipe
    assert record.run.total_steps == 4 and record.run.precision == "fp32"
    assert summary.steps == 4 and summary.val_images == 64 and summary.test_error is None
    assert [(r.step, r.is_epoch) for r in rows] == [(2, False), (4, False), (4, True)]
    assert rows[-1].val_error == summary.val_error
    assert Preprocessing.from_run(record).image_size == 32


def test_a_record_that_lacks_a_field_is_named_damaged(tmp_path):
    config = json.loads((WRITTEN_BY_0_1 / "config.json").read_text())
    del config["run"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json is damaged.*lacks run"):
        RunDir(tmp_path).read_record()


def test_a_record_round_trips_and_ignores_what_a_newer_version_adds(tmp_path):
    run = RunDir(tmp_path)
    record = RunDir(WRITTEN_BY_0_1).read_record()
    run.write_record(record)
    written = json.loads(run.config.read_text())
    written["added_later"] = {"anything": 1}
    written["data"]["added_later"] = 2
    run.config.write_text(json.dumps(written))
    again = run.read_record()
    assert again.train == record.train and again.recipe == record.recipe and again.data == record.data
    assert again.environment["torch"] == torch.__version__


def test_a_checkpoint_reads_back_every_field_it_was_saved_with(tmp_path):
    from verydeep.runs import Checkpoint, EvalResult

    saved = Checkpoint(
        model_name="plain56", options={"num_classes": 7}, config=TrainConfig("plain56", seed=4, subset=96),
        model={"w": torch.arange(3.0)}, optimizer={"state": {}, "lr": 0.5}, schedule={"val_errors": [0.3]},
        rng=torch.get_rng_state(), cuda_rng=torch.ones(2), step=17, seconds=3.5, images_seen=544,
        last_val=EvalResult(1.25, 0.375, 0.0625, 64), epoch_error=0.4375, partial=torch.full((2, 4), 2.0),
    )  # fmt: skip
    RunDir(tmp_path).save_checkpoint(saved)
    back = RunDir(tmp_path).load_checkpoint()
    for field in dataclasses.fields(Checkpoint):
        a, b = getattr(saved, field.name), getattr(back, field.name)
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), field.name
        elif field.name == "model":
            assert a.keys() == b.keys() and torch.equal(a["w"], b["w"])
        else:
            assert a == b, field.name
    # one written before the epoch's running sums and the last validation were kept reads with none of them
    state = saved.to_dict()
    for key in ("partial", "last_val", "epoch_error"):
        del state[key]
    older = Checkpoint.from_dict(state)
    assert older.partial is None and older.last_val is None and math.isnan(older.epoch_error)

"""The run folder: everything needed to see, resume and reproduce one training run.

config.json        resolved config, versions, device, command line, git commit
metrics.csv        one row per logged step and one per epoch
checkpoint.pt      model, optimizer, schedule, RNG states and position; replaced atomically
model.safetensors  final weights, with the model name and options in the metadata
summary.json       the run's outcome
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

METRICS = (
    "step",
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "val_top5_error",
    "images_per_second",
)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    weights = property(lambda self: self.path / "model.safetensors")
    summary = property(lambda self: self.path / "summary.json")

    log = property(lambda self: self.path / "train.log")  # what a run trained by `reproduce` printed

    def latest_weights(self) -> Path | None:
        """The final weights, else the last checkpoint (training not finished), else None."""
        return next((p for p in (self.weights, self.checkpoint) if p.exists()), None)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self):
        """Hold the folder for one training process: a second one (a rerun while the first still trains) is
        refused instead of racing it on checkpoint.pt and metrics.csv. A lock whose process is gone is taken over.
        A folder the lock created is removed again if nothing was written into it (a run refused at its set-up)."""
        created = not self.path.exists()
        self.create()
        path = self.path / ".lock"
        me = f"{socket.gethostname()} {os.getpid()}"
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                host, _, pid = path.read_text().partition(" ")
                if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
                    path.unlink(missing_ok=True)  # left by a process that was killed
                    continue
                raise ValueError(
                    f"{self.path} is in use by process {pid} on {host}; wait for it to finish or stop it "
                    f"(Ctrl-C saves its checkpoint), then resume"
                ) from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            if created and not any(self.path.iterdir()):
                self.path.rmdir()

    def write_json(self, path: Path, data: dict) -> None:
        atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())

    def read_json(self, path: Path) -> dict:
        return json.loads(path.read_text())

    def write_config(self, config: dict) -> None:
        self.write_json(self.config, {**config, "environment": environment()})

    def record_resumption(self, position: dict) -> None:
        """Add this resumption (where it starts, the environment and command line) to config.json."""
        config = self.read_config()
        config.setdefault("resumed", []).append({**position, "environment": environment()})
        self.write_json(self.config, config)

    def read_config(self) -> dict:
        if not self.config.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder: it has no config.json")
        return self.read_json(self.config)

    # metrics.csv ------------------------------------------------------------------------------------------
    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after ``after_step``: a resumed run writes them again, never twice."""
        if not self.metrics.exists():
            return
        with open(self.metrics, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= after_step]
        tmp = self.metrics.with_name("metrics.csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, METRICS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics)

    def append_metrics(self, rows: list[dict]) -> None:
        new = not self.metrics.exists()
        with open(self.metrics, "a", newline="") as f:
            writer = csv.DictWriter(f, METRICS)
            if new:
                writer.writeheader()
            writer.writerows({k: format_value(row.get(k)) for k in METRICS} for row in rows)

    def read_metrics(self) -> list[dict]:
        with open(self.metrics, newline="") as f:
            return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]

    # checkpoint.pt -----------------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        save_atomic(state, self.checkpoint)

    def load_checkpoint(self) -> dict:
        if not self.checkpoint.exists():
            raise FileNotFoundError(
                f"--resume: {self.path} has no checkpoint.pt to resume from; start the run without --resume"
            )
        return load_checkpoint(self.checkpoint)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists (PermissionError: it does, not ours)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write`` to a temporary file, fsync, then rename over ``path``: a crash at any moment leaves
    either the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def save_atomic(obj, path: Path) -> None:
    """torch.save, atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} is damaged or truncated ({type(e).__name__}); remove it to start over, or restore it from a copy"
        ) from e
    if not isinstance(state, dict) or "verydeep" not in state:
        raise ValueError(f"{path} is not a verydeep checkpoint")
    return state


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    import torchvision

    from .device import cpu_has_native_bf16, physical_cores
    from .version import __version__

    return {
        "verydeep": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_cores": physical_cores(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "command": " ".join(sys.argv),
        "git_commit": git_commit(),
    }

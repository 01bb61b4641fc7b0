"""The run folder: everything needed to see, resume and reproduce one training run.

config.json        resolved config, versions, device, command line, git commit    (``RunRecord``)
metrics.csv        one row per logged window of steps and one per epoch              (``MetricsRow``)
checkpoint.pt      model, optimizer, schedule, RNG states and position; replaced atomically (``Checkpoint``)
model.safetensors  final weights, with the model name and options in the metadata
summary.json       the run's outcome                                                 (``Summary``)
measure_NAME.json  a measurement of the final weights an experiment reads, kept so that a later call (on a
                   machine without the weights) reads it back                        (``RunDir.measured``)

The dataclasses below are the schema of those files; everything that reads a run folder reads it through them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import pickle
import platform
import re
import socket
import subprocess
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from .config import TrainConfig
from .recipes import Recipe


@dataclass(frozen=True)
class MetricsRow:
    """A row of metrics.csv. A window row (every ``log_every`` steps) holds the training loss and error averaged
    over the steps since the previous row; an epoch row, at each epoch's end, holds the epoch's speed and, when
    the run holds out validation images, the validation columns."""

    step: int
    epoch: float
    lr: float
    train_loss: float | None = None
    train_error: float | None = None
    val_loss: float | None = None
    val_error: float | None = None
    val_top5_error: float | None = None
    images_per_second: float | None = None

    @property
    def is_epoch(self) -> bool:
        return self.images_per_second is not None  # a window row's speed goes to the progress bar only


METRICS = tuple(f.name for f in dataclasses.fields(MetricsRow))


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of a network over a split: mean loss, top-1 and top-5 error (fractions) over ``images``
    images; under a test protocol (evaluate.py) also the split, protocol, scales and views, as a run folder's
    eval_SPLIT_PROTOCOL.json holds them."""

    loss: float
    error: float
    top5_error: float
    images: int
    split: str | None = None
    protocol: str | None = None
    scales: list[int] | None = None
    views_per_image: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        """From a file or checkpoint, ignoring what a newer version adds (the eval command adds the model too)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class Checkpoint:
    """checkpoint.pt: all a run needs to continue where it stopped, on any machine. The file holds it as a dict
    of tensors and plain data (``to_dict``), so that ``torch.load(weights_only=True)`` reads it and nothing in it
    can run code; ``verydeep.model`` and ``model`` are what ``load_weights`` builds a network from."""

    model_name: str  # the registered name (or a network built in Python's own)
    options: dict  # what the registered builder was given
    config: TrainConfig
    model: dict  # state dicts
    optimizer: dict
    schedule: dict
    rng: torch.Tensor  # torch's CPU generator
    cuda_rng: torch.Tensor | None  # the GPU's, on a GPU
    step: int
    seconds: float  # of training so far
    images_seen: int
    last_val: EvalResult | None
    epoch_error: float  # the last finished epoch's training error
    partial: torch.Tensor | None  # the running sums of the epoch and of the log window, when saved mid-epoch

    def to_dict(self) -> dict:
        return {
            "verydeep": {"model": self.model_name, "options": self.options},
            "config": self.config.to_dict(),
            "model": self.model,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "rng": {"torch": self.rng, "cuda": self.cuda_rng},
            "step": self.step,
            "seconds": self.seconds,
            "images_seen": self.images_seen,
            "last_val": {} if self.last_val is None else self.last_val.to_dict(),
            "epoch_error": self.epoch_error,
            "partial": self.partial,
        }

    @classmethod
    def from_dict(cls, state: dict) -> Checkpoint:
        """From the file's dict; one written before the epoch's running sums were kept reads with none."""
        return cls(
            model_name=state["verydeep"]["model"],
            options=state["verydeep"]["options"],
            config=TrainConfig.from_dict(state["config"]),
            model=state["model"],
            optimizer=state["optimizer"],
            schedule=state["schedule"],
            rng=state["rng"]["torch"],
            cuda_rng=state["rng"].get("cuda"),
            step=state["step"],
            seconds=state["seconds"],
            images_seen=state["images_seen"],
            last_val=EvalResult.from_dict(state["last_val"]) if state.get("last_val") else None,
            epoch_error=state.get("epoch_error", float("nan")),
            partial=state.get("partial"),
        )


@dataclass(frozen=True)
class Summary:
    """summary.json: how a finished run ended."""

    model: str
    options: dict
    data: str
    recipe: str
    epochs: float
    steps: int
    train_error: float  # the last epoch's, on the (augmented) images it trained on
    val_error: float | None  # the last evaluation's; None when the run held out no validation images
    val_top5_error: float | None
    val_images: int | None
    seconds: float  # of training, evaluation excluded
    images_per_second: float
    precision: str
    device: str
    skipped_files: int = 0
    test_error: float | None = None  # only with ``test``: the one evaluation on the test split
    test_top5_error: float | None = None

    def describe(self) -> str:
        line = (
            f"{self.model}: {self.steps} steps ({self.epochs:.2f} epochs) in {self.seconds:.0f} s, "
            f"{self.images_per_second:.0f} img/s; train error {100 * self.train_error:.2f}%"
        )
        if self.val_error is not None:  # None after --val-size 0
            line += f", val error {100 * self.val_error:.2f}%"
        if self.test_error is not None:
            line += f", test error {100 * self.test_error:.2f}%"
        return line


@dataclass(frozen=True)
class ModelRecord:
    name: str
    options: dict


@dataclass(frozen=True)
class DataRecord:
    name: str
    sizes: dict  # images per split, e.g. {"train": 55000, "val": 5000, "test": 10000}
    classes: list
    image_size: int
    in_channels: int
    source: str
    in_memory: bool = False  # decoded into memory (built-in sets, small image folders): trained on whole images


@dataclass(frozen=True)
class Placement:
    """Where and how the run trained."""

    device: str
    precision: str
    world_size: int
    steps_per_epoch: int
    total_steps: int
    micro_batch: int


@dataclass
class RunRecord:
    """config.json: what the run was asked (``train``), what that resolved to, where it ran; each resumption
    adds its position and environment to ``resumed``."""

    train: TrainConfig
    recipe: Recipe
    model: ModelRecord
    data: DataRecord
    mean: list  # what is subtracted from every input: per pixel (C, H, W) or per channel (C, 1, 1)
    run: Placement
    environment: dict = field(default_factory=dict)
    resumed: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        return from_dict(cls, data)


def from_dict(cls, data: dict):
    """``cls`` (a dataclass) from its JSON form: nested records built by their annotations, lists read back
    as the tuples a field declares; keys this version does not know are ignored, so that a record written by
    a newer one loads, and fields it lacks take their defaults, so that an older one does."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, kind = data[f.name], hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = kind.from_dict(value) if kind is TrainConfig else from_dict(kind, value)
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}: not written by verydeep")
    return cls(**values)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    weights = property(lambda self: self.path / "model.safetensors")
    summary = property(lambda self: self.path / "summary.json")

    log = property(lambda self: self.path / "train.log")  # what a run trained by `reproduce` printed

    def eval_file(self, split: str, protocol: str) -> Path:
        """Where an evaluation of the run's weights is kept (an ``EvalResult``), by split and protocol."""
        return self.path / f"eval_{split}_{protocol}.json"

    def measured(self, name: str, inputs: dict, measure: Callable[[], object]):
        """A measurement of the finished run's weights (``measure()``, JSON-able) kept in measure_NAME.json with
        the ``inputs`` that define it: measured once, read back by every later call whose inputs are the same, on
        any machine, the weights kept or not (results/ keeps the records, not the weights)."""
        path = self.path / f"measure_{name}.json"
        inputs = json.loads(json.dumps(inputs))  # as the file holds them: tuples as lists
        if path.exists():
            kept = json.loads(path.read_text())
            if kept.get("inputs") == inputs:
                return kept["value"]
        value = measure()
        self.write_json(path, {"inputs": inputs, "value": value})
        return json.loads(json.dumps(value))  # the same whether measured now or read back

    def forget_measurements(self) -> None:
        for path in self.path.glob("measure_*.json"):
            path.unlink()

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

    def write_record(self, record: RunRecord) -> None:
        self.write_json(self.config, dataclasses.replace(record, environment=environment()).to_dict())

    def record_resumption(self, position: dict) -> None:
        """Add this resumption (where it starts, the environment and command line) to config.json."""
        record = self.read_record()
        record.resumed.append({**position, "environment": environment()})
        self.write_json(self.config, record.to_dict())

    def read_record(self) -> RunRecord:
        if not self.config.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder: it has no config.json")
        return self._read(RunRecord, self.config)

    def write_summary(self, summary: Summary) -> None:
        self.write_json(self.summary, dataclasses.asdict(summary))

    def read_summary(self) -> Summary:
        if not self.summary.exists():
            raise FileNotFoundError(f"{self.path} has no summary.json: its training has not finished")
        return self._read(Summary, self.summary)

    def _read(self, cls, path: Path):
        try:
            return from_dict(cls, self.read_json(path))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} is damaged ({e}); restore it from a copy or train the run again") from None

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

    def append_metrics(self, rows: list[MetricsRow]) -> None:
        new = not self.metrics.exists()
        with open(self.metrics, "a", newline="") as f:
            writer = csv.DictWriter(f, METRICS)
            if new:
                writer.writeheader()
            writer.writerows({k: format_value(getattr(row, k)) for k in METRICS} for row in rows)

    def read_metrics(self) -> list[MetricsRow]:
        with open(self.metrics, newline="") as f:
            return [parse_row(row) for row in csv.DictReader(f)]

    def last_step(self) -> int:
        """The step of metrics.csv's last complete row (0 before the first): how far training has got, read
        while the run may be appending to it."""
        try:
            lines = self.metrics.read_text().splitlines(keepends=True)
        except OSError:
            return 0
        complete = [line for line in lines[1:] if line.endswith("\n")]
        return int(complete[-1].split(",")[0]) if complete else 0

    # checkpoint.pt -----------------------------------------------------------------------------------------
    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        save_atomic(checkpoint.to_dict(), self.checkpoint)

    def load_checkpoint(self) -> Checkpoint:
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


def parse_row(row: dict) -> MetricsRow:
    values = {k: float(v) for k, v in row.items() if k in METRICS and v not in ("", None)}
    return MetricsRow(**{**values, "step": int(values["step"])})


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


def unsafe_pickle(path: Path, error: Exception) -> ValueError | None:
    """The error for a file whose pickle names something beyond tensors and plain data (None for any other
    failure): such a pickle runs code when loaded the unsafe way, so it is refused, never retried."""
    if not isinstance(error, pickle.UnpicklingError) or "Weights only load failed" not in str(error):
        return None
    found = re.search(r"GLOBAL (\S+)", str(error))
    what = f" ({found.group(1)})" if found else ""
    return ValueError(
        f"{path} is refused as unsafe to load: its pickle holds an object other than tensors and plain data{what}, "
        "which would run code if loaded; nothing in it was run. Save a state dict (torch.save(model.state_dict(), "
        "...)) or a safetensors file instead"
    )


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if unsafe := unsafe_pickle(path, e):
            raise unsafe from None
        raise ValueError(
            f"{path} is damaged or truncated ({type(e).__name__}); remove it to start over, or restore it from a copy"
        ) from e
    if not isinstance(state, dict) or "verydeep" not in state:
        raise ValueError(f"{path} is not a verydeep checkpoint")
    return Checkpoint.from_dict(state)


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

    from .device import cpu_has_native_bf16, cpu_name, physical_cores
    from .version import __version__

    return {
        "verydeep": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        "cpu_cores": physical_cores(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "command": " ".join(sys.argv),
        "git_commit": git_commit(),
    }

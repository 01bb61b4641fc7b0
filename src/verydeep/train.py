"""The one training loop: SGD with momentum over a recipe's schedule, evaluation each epoch, and a run folder
that survives interruption (SIGINT/SIGTERM), a non-finite loss or a crash without losing its last good state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import load_data
from .device import (
    Distributed,
    autocast,
    convert_sync_batchnorm,
    physical_cores,
    pick_device,
    process_settings,
    resolve_precision,
    set_threads,
)
from .metrics import evaluate, summarise
from .recipes import Recipe, get_recipe, override
from .registry import create_model, get_entry, options_for_data
from .runs import RunDir
from .schedules import make_schedule
from .weights import save_weights


@dataclass
class TrainConfig:
    """Everything that decides a run. Written, resolved, to the run folder's config.json."""

    model: str
    data: str = "fashion-mnist"
    data_dir: str | None = None
    recipe: str | None = None  # default: the paper's recipe for this model
    overrides: dict = field(default_factory=dict)  # recipe fields changed from the paper's values
    model_options: dict = field(default_factory=dict)
    epochs: float | None = None  # length of the run; default: the recipe's iterations
    iters: int | None = None
    subset: int | None = None
    val_size: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware has it (CUDA, CPUs with bf16 instructions)
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    micro_batch: int | None = None  # gradient accumulation: split each step's batch into micro-batches
    init_from: str | None = None  # VGG Sec. 3.1: start from a trained configuration A
    log_every: int = 50  # steps between metrics rows
    checkpoint_every: int | None = None  # steps between checkpoints (always at the end of each epoch)
    workers: int | None = None
    skip_bad: bool = False
    sync_bn: bool = False
    test: bool = False  # evaluate once on the test split at the end (never used for any choice)

    IDENTITY = ("model", "data", "recipe", "overrides", "model_options", "subset", "val_size", "seed", "init_from")

    def identity(self) -> dict:
        """What makes two configs the same run, compared by meaning: a model by its canonical name (vgg16 is
        vgg_d), the recipe by its resolved values ("0.05" and 0.05, lists and tuples alike)."""
        fields = {key: getattr(self, key) for key in self.IDENTITY if key not in ("overrides", "recipe")}
        fields["model"] = get_entry(self.model).name
        fields["recipe"] = self.resolved_recipe()
        fields["model_options"] = json.loads(json.dumps(self.model_options))
        return fields

    def resolved_recipe(self) -> Recipe:
        return override(get_recipe(self.recipe or get_entry(self.model).recipe), **self.overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**data)


def forward_backward(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    precision: str,
    label_smoothing: float = 0.0,
    accumulate: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One micro-batch's forward and backward pass; returns the (detached) loss and logits."""
    with autocast(device, precision):
        logits = net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    (loss / accumulate).backward()
    return loss.detach(), logits.detach()


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint: ``reason`` says where, ``command`` continues
    the run."""

    def __init__(self, reason: str, command: str):
        super().__init__(f"{reason}. Continue with: {command}")
        self.reason, self.command = reason, command


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def build_model(cfg: TrainConfig, data) -> nn.Module:
    """The network for this data: its classes and channels, and VGG's small-image head below 224 px."""
    name = get_entry(cfg.model).name
    options = options_for_data(name, data.num_classes, data.in_channels, data.image_size)
    options.update(cfg.model_options)
    return create_model(name, **options)


def initialise_from(model: nn.Module, source: str) -> list[str]:
    from .models.vgg import VGG, initialise_from_a
    from .weights import load_weights

    path = Path(source)
    if path.is_dir():
        path = RunDir(path).latest_weights() or path
    if not isinstance(model, VGG):
        raise ValueError("--init-from copies a trained VGG configuration A into a deeper VGG (VGG Sec. 3.1)")
    return initialise_from_a(model, load_weights(path))


class Progress:
    """A tqdm bar on a terminal; plain log lines otherwise (files, CI, notebooks' captured output)."""

    def __init__(self, total: int, initial: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.bar = tqdm(total=total, initial=initial, file=self.stream, dynamic_ncols=True) if self.tty else None
        self.total = total
        self.t0, self.s0 = time.perf_counter(), initial

    def update(self, step: int, info: dict) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(
                loss=f"{info['train_loss']:.3f}",
                err=f"{100 * info['train_error']:.1f}%",
                lr=f"{info['lr']:.3g}",
                img_s=f"{info['images_per_second']:.0f}",
                refresh=True,
            )
        elif self.enabled:
            done = step - self.s0
            rate = done / max(time.perf_counter() - self.t0, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            self.write(
                f"step {step}/{self.total} epoch {info['epoch']:.2f} lr {info['lr']:.3g} "
                f"loss {info['train_loss']:.4f} error {100 * info['train_error']:.2f}% "
                f"{info['images_per_second']:.0f} img/s ETA {format_seconds(eta)}"
            )

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so it can checkpoint first."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def fit(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
    progress: bool = True,
) -> dict:
    """Train ``cfg`` into the run folder ``out`` and return its summary.

    With ``resume``, continue the run saved in ``out`` from its checkpoint to the end ``cfg`` now asks for:
    the same data order, schedule and random numbers, metrics appended without duplicates.

    Under torchrun each process trains on its share of every batch (DistributedDataParallel) and rank 0 alone
    writes the run folder. A process that fails says which it is before the error ends the job.
    """
    dist = Distributed.from_env()
    device = pick_device(cfg.device, dist.local_rank)
    started = dist.init(device)
    try:
        with process_settings(cfg.deterministic), RunDir(out).lock() if dist.is_main else contextlib.nullcontext():
            return Trainer(cfg, out, resume, dist, device, progress, on_step).run()
    except Interrupted:  # every process stops at the same step, in order
        raise
    except BaseException as error:
        if dist.enabled:
            print(f"verydeep train: {dist.describe()} failed: {type(error).__name__}: {error}", file=sys.stderr)
        raise
    finally:
        if started:
            dist.close()


class Trainer:
    """One run: set up from its config (and checkpoint), train to the end, keep the run folder current.

    Every step's statistics stay on the device; they are read (and, under torchrun, summed over processes) once
    per logged window and once per epoch, so the loop never waits on the device in between.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out: str | Path,
        resume: bool,
        dist: Distributed,
        device: torch.device,
        progress: bool = True,
        on_step: Callable[[int], None] | None = None,
    ):
        self.cfg, self.dist, self.device, self.on_step = cfg, dist, device, on_step
        threads = set_threads(dist.world_size) if device.type == "cpu" else None
        self.precision = resolve_precision(cfg.precision, device)
        self.recipe = recipe = cfg.resolved_recipe()
        self.run_dir = run = RunDir(out)
        checkpoint = self.claim_run_folder(resume)

        if dist.local_rank != 0:
            dist.barrier()  # local rank 0 fetches a missing data set alone; the others then find it in place
        self.data = data = load_data(
            cfg.data,
            cfg.data_dir,
            mean=recipe.mean,
            val_size=cfg.val_size,
            subset=cfg.subset,
            skip_bad=cfg.skip_bad,
            scale=recipe.scale,
            color_jitter=recipe.color_jitter,
            workers=cfg.workers,
        )
        if dist.local_rank == 0:
            dist.barrier()
        # --val-size 0 trains on the whole training set, as the ResNet paper's test figures were (Sec. 4.2: the
        # schedule was chosen on 45k/5k, the reported nets trained on all 50k): no val evaluation each epoch
        self.validate = data.sizes.get("val", 0) > 0
        if not self.validate and recipe.schedule == "plateau":
            raise ValueError(
                "the plateau schedule lowers the rate when the val error stops falling, and --val-size 0 leaves no "
                "val split: give --val-size 1 or more, or --schedule step or cosine"
            )
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, data)
        self.name, self.options = model.verydeep_name, model.verydeep_options
        copied = initialise_from(model, cfg.init_from) if cfg.init_from and checkpoint is None else []

        if recipe.batch_size % dist.world_size:
            raise ValueError(f"batch size {recipe.batch_size} does not split evenly over {dist.world_size} processes")
        self.rank_batch = recipe.batch_size // dist.world_size
        self.micro = cfg.micro_batch or self.rank_batch
        if self.rank_batch % self.micro:
            raise ValueError(f"--micro-batch {self.micro} must divide the per-process batch {self.rank_batch}")
        self.accumulate = self.rank_batch // self.micro
        self.steps_per_epoch = data.num_batches("train", self.rank_batch, world_size=dist.world_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{data.sizes['train']} training images make no batch of {recipe.batch_size}")
        if cfg.iters is not None:
            self.total_steps = cfg.iters
        elif cfg.epochs is not None:
            self.total_steps = max(1, round(cfg.epochs * self.steps_per_epoch))
        else:
            self.total_steps = recipe.iterations
        self.schedule = make_schedule(recipe, self.total_steps, self.name)

        model = model.to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and dist.enabled:
            model = convert_sync_batchnorm(model, device)
        self.model = model
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
        self.step, self.seconds, self.images_seen = 0, 0.0, 0
        self.last_val: dict = {}
        self.epoch_error = math.nan
        if checkpoint is not None:
            self.restore(checkpoint)
        if dist.is_main:
            run.create()
            if checkpoint is None:
                run.write_config(self.describe())
            else:  # the original record stays; each resumption is added to it
                run.record_resumption({"step": self.step, "total_steps": self.total_steps})
                run.truncate_metrics(self.step)
        self.net = model
        if dist.enabled:
            device_ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if cfg.compile:
            self.net = torch.compile(self.net)

        self.tensorboard = open_tensorboard(run.path) if dist.is_main else None
        self.bar = Progress(self.total_steps, self.step, enabled=progress and dist.is_main)
        for note in data.notes:
            self.bar.write(f"note: {note}")
        if copied:
            self.bar.write(f"initialised from {cfg.init_from}: {', '.join(copied)}")
        if checkpoint is not None and self.schedule.total_steps != self.total_steps:
            self.bar.write(
                f"note: the schedule keeps the run's original length of {self.schedule.total_steps} steps; steps "
                f"beyond it train at its final learning rate"
            )
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
        if threads is not None and dist.enabled and threads * local_processes < physical_cores():
            self.bar.write(
                f"{threads} thread(s) in each of {local_processes} processes on {physical_cores()} cores: torchrun "
                f"sets OMP_NUM_THREADS=1 unless it is set; OMP_NUM_THREADS={physical_cores() // local_processes} "
                "uses them all"
            )
        self.pending: list[dict] = []  # metrics rows not yet written
        self.window = torch.zeros(4, dtype=torch.float64, device=device)  # loss, errors, top-5 errors, images
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
        self.window_t0 = time.perf_counter()
        self.fresh = checkpoint is None

    def claim_run_folder(self, resume: bool) -> dict | None:
        """Rank 0, which alone writes the folder, decides whether it may be used; every process learns the
        answer, so that all of them go on or all stop with the same error."""
        checkpoint, refusal = None, None
        if self.dist.is_main:
            try:
                checkpoint = checkpoint_to_resume(self.run_dir, self.cfg, resume)
            except (ValueError, OSError) as error:
                refusal = error
        refusal = self.dist.broadcast_object(refusal)
        if refusal is not None:
            raise refusal
        if resume and not self.dist.is_main:
            checkpoint = self.run_dir.load_checkpoint()  # across machines, --resume needs --out on shared storage
        return checkpoint

    def describe(self) -> dict:
        data = self.data
        return {
            "train": self.cfg.to_dict(),
            "recipe": dataclasses.asdict(self.recipe),
            "model": {"name": self.name, "options": self.options},
            "data": {
                "name": data.name,
                "sizes": data.sizes,
                "classes": data.classes,
                "image_size": data.image_size,
                "in_channels": data.in_channels,
                "source": data.source,
            },
            "mean": data.mean.tolist(),
            "run": {
                "device": str(self.device),
                "precision": self.precision,
                "world_size": self.dist.world_size,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "micro_batch": self.micro,
            },
        }

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "verydeep": {"model": self.name, "options": self.options},
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            "step": self.step,
            "seconds": self.seconds,
            "images_seen": self.images_seen,
            "last_val": self.last_val,
            "epoch_error": self.epoch_error,
        }

    def restore(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], self.device)
        self.step, self.seconds, self.images_seen = checkpoint["step"], checkpoint["seconds"], checkpoint["images_seen"]
        self.last_val = checkpoint.get("last_val", {})
        self.epoch_error = checkpoint.get("epoch_error", math.nan)

    def save(self) -> None:
        """Write the metrics gathered so far, then the checkpoint (rank 0 only); never weights that a non-finite
        loss has touched: the last good checkpoint stays."""
        self.flush_metrics()
        bad = int(self.first_bad)
        if bad < 0 and not self.weights_finite():
            bad = self.step - 1  # an update overflowed the weights before any loss showed it
        if bad >= 0:
            raise self.non_finite(f"the loss became non-finite at step {bad + 1}")
        if self.dist.is_main:
            self.run_dir.save_checkpoint(self.state())

    def non_finite(self, what: str) -> NonFiniteLoss:
        return NonFiniteLoss(
            f"{what}; training stopped and the last good checkpoint ({self.run_dir.checkpoint}) was kept. "
            "Lower --lr, or use --precision fp32 if bf16 overflowed."
        )

    def weights_finite(self) -> bool:
        tensors = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        return bool(torch.stack([t.isfinite().all() for t in tensors]).all())

    def flush_metrics(self) -> None:
        if self.dist.is_main and (self.pending or not self.run_dir.metrics.exists()):
            self.run_dir.append_metrics(self.pending)
            if self.tensorboard is not None:
                for row in self.pending:
                    for key in ("lr", "train_loss", "train_error", "val_loss", "val_error", "val_top5_error"):
                        if row.get(key) is not None:
                            self.tensorboard.add_scalar(key, row[key], row["step"])
        self.pending.clear()

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        if self.fresh and self.dist.is_main:
            self.run_dir.save_checkpoint(self.state())  # a last good state exists from the first step on
        self.net.train()
        try:
            with StopSignal() as stop:
                while self.step < self.total_steps:
                    self.train_epoch(stop)
        finally:
            self.bar.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
        return self.finish()

    def train_epoch(self, stop: StopSignal) -> None:
        """From the current step to the end of its epoch (or of the run), then evaluate and checkpoint."""
        epoch, start = divmod(self.step, self.steps_per_epoch)
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        t0, images = time.perf_counter(), 0
        batches = self.data.batches(
            "train",
            self.micro,
            epoch=epoch,
            start=start * self.accumulate,
            seed=self.cfg.seed,
            augment=self.recipe.augment,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=self.device,
            channels_last=self.cfg.channels_last,
        )
        micro_index = 0
        for x, y in batches:
            micro_index += 1
            last = micro_index == self.accumulate
            # DDP averages gradients over processes only on the last micro-batch of a step
            sync = self.net.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
            with sync:
                loss, logits = forward_backward(
                    self.net, x, y, self.device, self.precision, self.recipe.label_smoothing, self.accumulate
                )
            stats = summarise(logits.float(), y)
            self.window += stats
            totals += stats
            self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss), self.step, self.first_bad)
            if not last:
                continue
            micro_index = 0
            lr = self.optimizer_step()
            images += self.recipe.batch_size
            end_of_epoch = self.step % self.steps_per_epoch == 0 or self.step == self.total_steps
            if self.step % self.cfg.log_every == 0 or end_of_epoch:
                self.log_window(lr, epoch)
            if end_of_epoch:
                self.end_epoch(lr, totals, time.perf_counter() - t0, images)
                return
            if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                self.save()
            if stop_requested(stop, self.dist, self.device):
                self.seconds += time.perf_counter() - t0
                self.save()
                raise Interrupted(
                    f"stopped by signal at step {self.step}/{self.total_steps}; the checkpoint is saved",
                    f"verydeep train --out {self.run_dir.path} --resume",
                )

    def optimizer_step(self) -> float:
        lr = self.schedule.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.images_seen += self.recipe.batch_size
        if self.on_step is not None:
            self.on_step(self.step)
        return lr

    def log_window(self, lr: float, epoch: int) -> None:
        """One metrics row for the steps since the last; stop here if any of them had a non-finite loss."""
        self.dist.all_reduce_sum(self.window)
        loss_sum, wrong, _, count = self.window.tolist()
        now = time.perf_counter()
        row = {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "lr": lr,
            "train_loss": loss_sum / count,
            "train_error": wrong / count,
        }
        self.pending.append(row)
        bad = int(self.first_bad)
        if bad >= 0 or not math.isfinite(loss_sum):
            self.flush_metrics()
            raise self.non_finite(f"the loss became non-finite at step {max(bad, 0) + 1} (epoch {epoch + 1})")
        self.schedule.observe_train_error(self.step - 1, row["train_error"])
        self.bar.update(self.step, {**row, "images_per_second": count / max(now - self.window_t0, 1e-9)})
        self.window.zero_()
        self.window_t0 = now

    def end_epoch(self, lr: float, totals: torch.Tensor, train_seconds: float, images: int) -> None:
        self.seconds += train_seconds
        self.dist.all_reduce_sum(totals)
        self.epoch_error = (totals[1] / totals[3].clamp(min=1)).item()
        speed = images / max(train_seconds, 1e-9)
        row = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "lr": lr, "images_per_second": speed}
        line = f"epoch {self.step / self.steps_per_epoch:.2f}: train error {100 * self.epoch_error:.2f}%, "
        if self.validate:
            self.last_val = self.evaluate("val")
            if not math.isfinite(self.last_val["loss"]):
                self.flush_metrics()
                raise self.non_finite(f"the validation loss became non-finite after step {self.step}")
            self.schedule.observe_val_error(self.last_val["error"])
            val = self.last_val
            row |= {"val_loss": val["loss"], "val_error": val["error"], "val_top5_error": val["top5_error"]}
            line += f"val error {100 * self.last_val['error']:.2f}% (top-5 {100 * self.last_val['top5_error']:.2f}%), "
        self.pending.append(row)
        self.bar.write(f"{line}{speed:.0f} img/s")
        self.save()
        self.window_t0 = time.perf_counter()

    def evaluate(self, split: str) -> dict:
        batches = self.data.batches(
            split,
            self.rank_batch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=self.device,
            channels_last=self.cfg.channels_last,
        )
        return evaluate(self.net, batches, self.device, self.precision, self.dist)

    def finish(self) -> dict:
        """Final weights and summary.json; with ``test``, the one evaluation on the test split."""
        summary = {
            "model": self.name,
            "options": self.options,
            "data": self.data.name,
            "recipe": self.recipe.name,
            "epochs": self.step / self.steps_per_epoch,
            "steps": self.step,
            "train_error": self.epoch_error,
            "val_error": self.last_val.get("error"),
            "val_top5_error": self.last_val.get("top5_error"),
            "val_images": self.last_val.get("images"),
            "seconds": self.seconds,
            "images_per_second": self.images_seen / max(self.seconds, 1e-9),
            "precision": self.precision,
            "device": str(self.device),
            "skipped_files": getattr(self.data, "skipped", 0),
        }
        if self.cfg.test:
            result = self.evaluate("test")
            summary.update(test_error=result["error"], test_top5_error=result["top5_error"])
            if self.dist.is_main:
                self.run_dir.write_json(
                    self.run_dir.path / "eval_test_center.json", {"split": "test", "protocol": "center", **result}
                )
        if self.dist.is_main:
            save_weights(self.model, self.run_dir.weights)
            self.run_dir.write_json(self.run_dir.summary, summary)
        return summary


def checkpoint_to_resume(run: RunDir, cfg: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint a resumed run continues from (None for a new run), if ``run`` may be used for ``cfg``."""
    if not resume:
        if run.checkpoint.exists():
            raise ValueError(f"{run.path} already holds a run; pass --resume to continue it or choose another --out")
        return None
    checkpoint = run.load_checkpoint()
    saved, given = TrainConfig.from_dict(checkpoint["config"]).identity(), cfg.identity()
    for key, value in saved.items():
        if given[key] != value:
            raise ValueError(
                f"--resume: the run in {run.path} has {key}={value!r}, not {given[key]!r}; "
                "resume it with its own settings or start a new run in another --out"
            )
    return checkpoint


def stop_requested(stop: StopSignal, dist: Distributed, device: torch.device) -> bool:
    """Every process stops at the same step if any of them was signalled."""
    if not dist.enabled:
        return stop.received is not None
    flag = torch.tensor(float(stop.received is not None), device=device)
    return bool(dist.all_reduce_sum(flag).item())


def open_tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(path / "tensorboard"))

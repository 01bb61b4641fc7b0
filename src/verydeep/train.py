"""The one training loop: SGD with momentum over a recipe's schedule, evaluation each epoch, and a run folder
that survives interruption (SIGINT/SIGTERM), a non-finite loss or a crash without losing its last good state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .device import (
    Distributed,
    autocast,
    convert_sync_batchnorm,
    physical_cores,
    pick_device,
    process_settings,
    set_threads,
)
from .metrics import evaluate, summarise
from .progress import Progress
from .runs import Checkpoint, DataRecord, EvalResult, MetricsRow, ModelRecord, Placement, RunDir, RunRecord, Summary
from .schedules import make_schedule
from .setup import Setup, check_named_apart, resolve
from .signals import StopSignal
from .weights import save_weights


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


class CheckpointNotWritten(Exception):
    """The run folder could not be written (a full disk, say); the last checkpoint written is kept."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def claim_run_folder(run: RunDir, cfg: TrainConfig, resume: bool, dist: Distributed) -> Checkpoint | None:
    """Rank 0, which alone writes the folder, decides whether it may be used; every process learns the answer,
    so that all of them go on or all stop with the same error. Returns the checkpoint to resume from."""
    checkpoint, refusal = None, None
    if dist.is_main:
        try:
            checkpoint = checkpoint_to_resume(run, cfg, resume)
        except (ValueError, OSError) as error:
            refusal = error
    refusal = dist.broadcast_object(refusal)
    if refusal is not None:
        raise refusal
    if resume and not dist.is_main:
        checkpoint = run.load_checkpoint()  # across machines, --resume needs --out on shared storage
    return checkpoint


def fit(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
    progress: bool = True,
    model: nn.Module | None = None,
) -> Summary:
    """Train ``cfg`` into the run folder ``out`` and return its summary.

    With ``resume``, continue the run saved in ``out`` from its checkpoint to the end ``cfg`` now asks for:
    the same data order, schedule and random numbers, metrics appended without duplicates.

    ``model``: a network built in Python instead of the registered ``cfg.model``; the config then gives it a
    name of its own and a recipe. It trains with the same loop, run folder and resume (give the same network,
    freshly built, to resume).

    Under torchrun each process trains on its share of every batch (DistributedDataParallel) and rank 0 alone
    writes the run folder. A process that fails says which it is before the error ends the job.
    """
    dist = Distributed.from_env()
    device = pick_device(cfg.device, dist.local_rank)
    started = dist.init(device)
    run = RunDir(out)
    if model is not None:
        check_named_apart(cfg)
    try:
        # The stop request is armed before anything is set up: a signal that arrives while the model is built
        # or the first checkpoint written stops the run at its first step, checkpointed, like any other.
        with (
            StopSignal() as stop,
            process_settings(cfg.deterministic),
            run.lock() if dist.is_main else contextlib.nullcontext(),
        ):
            threads = set_threads(dist.world_size) if device.type == "cpu" else None
            checkpoint = claim_run_folder(run, cfg, resume, dist)
            setup = resolve(cfg, dist, device, threads, checkpoint, model)
            trainer = Trainer(setup, run, progress, on_step)
            trainer.announce()
            return trainer.run(stop)
    except Interrupted:  # every process stops at the same step, in order
        raise
    except BaseException as error:
        if dist.enabled and not os.environ.get("VERYDEEP_LAUNCHED"):
            print(f"verydeep train: {dist.describe()} failed: {type(error).__name__}: {error}", file=sys.stderr)
        raise
    finally:
        if started:
            dist.close()


class Trainer:
    """One run: set up from its resolved config (and checkpoint), train to the end, keep the run folder current.

    Every step's statistics stay on the device; they are read (and, under torchrun, summed over processes) once
    per logged window and once per epoch, so the loop never waits on the device in between.
    """

    def __init__(self, setup: Setup, run: RunDir, progress: bool = True, on_step: Callable[[int], None] | None = None):
        self.setup, self.run_dir, self.on_step = setup, run, on_step
        self.compute, self.loop = setup.compute, setup.loop
        self.dist, self.device, self.precision = setup.compute.dist, setup.compute.device, setup.compute.precision
        dist, device, checkpoint = self.dist, self.device, setup.checkpoint
        self.recipe, self.data, self.plan = setup.recipe, setup.data, setup.plan
        self.name, self.options = setup.name, setup.options
        # --val-size 0 trains on the whole training set, as the ResNet paper's test figures were (Sec. 4.2: the
        # schedule was chosen on 45k/5k, the reported nets trained on all 50k): no val evaluation each epoch
        self.validate = self.data.sizes.get("val", 0) > 0
        self.schedule = make_schedule(self.recipe, self.plan.total_steps, self.name)
        self.model = self.net = self.place(setup.model)
        recipe = self.recipe
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
        self.step, self.seconds, self.images_seen = 0, 0.0, 0
        self.last_val: EvalResult | None = None
        self.epoch_error = math.nan
        self.totals: torch.Tensor | None = None  # the running epoch's sums: loss, errors, top-5 errors, images
        self.partial: torch.Tensor | None = None  # those and the log window's, saved with a checkpoint mid-epoch
        if checkpoint is not None:
            self.restore(checkpoint)
        if dist.is_main:
            run.create()
            if checkpoint is None:
                run.write_record(self.describe())
                run.truncate_metrics(0)  # rows a record carried without its checkpoint are not this run's
                run.forget_measurements()  # nor are measurements of weights it will replace
            else:  # the original record stays; each resumption is added to it
                run.record_resumption({"step": self.step, "total_steps": self.plan.total_steps})
                run.truncate_metrics(self.step)
        if dist.enabled:
            device_ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if self.compute.compile:
            self.net = torch.compile(self.net)
        self.tensorboard = open_tensorboard(run.path) if dist.is_main else None
        self.bar = Progress(self.plan.total_steps, self.step, enabled=progress and dist.is_main)
        self.pending: list[dict] = []  # metrics rows not yet written
        self.window = torch.zeros(4, dtype=torch.float64, device=device)  # loss, errors, top-5 errors, images
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
        self.window_t0 = time.perf_counter()
        self.fresh = checkpoint is None
        self.saved_step = None if checkpoint is None else self.step  # the step of the last checkpoint written

    def place(self, model: nn.Module) -> nn.Module:
        """The network on the device, in the memory format and BatchNorm the config asks for."""
        model = model.to(self.device)
        if self.compute.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compute.sync_bn and self.dist.enabled:
            model = convert_sync_batchnorm(model, self.device)
        return model

    def announce(self) -> None:
        """What the user should know before the first step: the data's notes, the copied layers, a schedule that
        keeps its length on resume, threads left idle under torchrun."""
        setup, threads = self.setup, self.compute.threads
        for note in setup.data.notes:
            self.bar.write(f"note: {note}")
        if setup.copied:
            self.bar.write(f"initialised from {setup.init_from}: {', '.join(setup.copied)}")
        if setup.checkpoint is not None and self.schedule.total_steps != self.plan.total_steps:
            self.bar.write(
                f"note: the schedule keeps the run's original length of {self.schedule.total_steps} steps; steps "
                f"beyond it train at its final learning rate"
            )
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world_size))
        if threads is not None and self.dist.enabled and threads * local_processes < physical_cores():
            self.bar.write(
                f"{threads} thread(s) in each of {local_processes} processes on {physical_cores()} cores: torchrun "
                f"sets OMP_NUM_THREADS=1 unless it is set; OMP_NUM_THREADS={physical_cores() // local_processes} "
                "uses them all"
            )

    def describe(self) -> RunRecord:
        data, plan = self.data, self.plan
        return RunRecord(
            train=self.setup.config,
            recipe=self.recipe,
            model=ModelRecord(self.name, self.options),
            data=DataRecord(
                data.name,
                data.sizes,
                list(data.classes),
                data.image_size,
                data.in_channels,
                data.source,
                data.in_memory,
            ),
            mean=data.mean.tolist(),
            run=Placement(
                device=str(self.device),
                precision=self.precision,
                world_size=self.dist.world_size,
                steps_per_epoch=plan.steps_per_epoch,
                total_steps=plan.total_steps,
                micro_batch=plan.micro,
            ),
        )

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state(self) -> Checkpoint:
        return Checkpoint(
            model_name=self.name,
            options=self.options,
            config=self.setup.config,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            step=self.step,
            seconds=self.seconds,
            images_seen=self.images_seen,
            last_val=self.last_val,
            epoch_error=self.epoch_error,
            partial=self.partial,
        )

    def restore(self, checkpoint: Checkpoint) -> None:
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.schedule.load_state_dict(checkpoint.schedule)
        torch.set_rng_state(checkpoint.rng)
        if self.device.type == "cuda" and checkpoint.cuda_rng is not None:
            torch.cuda.set_rng_state(checkpoint.cuda_rng, self.device)
        self.step, self.seconds, self.images_seen = checkpoint.step, checkpoint.seconds, checkpoint.images_seen
        self.last_val, self.epoch_error = checkpoint.last_val, checkpoint.epoch_error
        self.partial = None if checkpoint.partial is None else checkpoint.partial.to(self.device)

    def save(self) -> None:
        """Write the metrics gathered so far, then the checkpoint (rank 0 only); never weights that a non-finite
        loss has touched: the last good checkpoint stays."""
        try:
            self.flush_metrics()
        except OSError as error:
            raise self.not_written(error) from None
        bad = int(self.first_bad)
        if bad < 0 and not self.weights_finite():
            bad = self.step - 1  # an update overflowed the weights before any loss showed it
        if bad >= 0:
            raise self.non_finite(f"the loss became non-finite at step {bad + 1}")
        # the running sums of the epoch and of the log window, over every process (each resumes with its share),
        # so that a run resumed mid-epoch reports the training error an uninterrupted one does
        sums = torch.stack([self.totals, self.window]) if self.totals is not None else None
        self.partial = None if sums is None else (self.dist.all_reduce_sum(sums.clone()) / self.dist.world_size).cpu()
        self.write_checkpoint()
        self.partial = None

    def write_checkpoint(self) -> None:
        """checkpoint.pt, atomically (rank 0 only): a write that fails, for a full disk say, leaves the last one
        whole and stops the run with one line saying so."""
        if not self.dist.is_main:
            return
        try:
            self.run_dir.save_checkpoint(self.state())
        except OSError as error:
            raise self.not_written(error) from None
        self.saved_step = self.step

    def not_written(self, error: OSError) -> CheckpointNotWritten:
        kept = f"the checkpoint of step {self.saved_step} is kept" if self.saved_step is not None else "none is kept"
        return CheckpointNotWritten(
            f"could not write the run folder {self.run_dir.path} at step {self.step}: {error.strerror or error}; "
            f"{kept}. Free some space, then `verydeep train --out {self.run_dir.path} --resume` continues"
        )

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
                        if getattr(row, key) is not None:
                            self.tensorboard.add_scalar(key, getattr(row, key), row.step)
        self.pending.clear()

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self, stop: StopSignal) -> Summary:
        try:
            if self.fresh:
                self.write_checkpoint()  # a last good state exists from the first step on
            self.net.train()
            while self.step < self.plan.total_steps:
                self.train_epoch(stop)
        finally:
            self.bar.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
        return self.finish()

    def train_epoch(self, stop: StopSignal) -> None:
        """From the current step to the end of its epoch (or of the run), then evaluate and checkpoint."""
        epoch, start = divmod(self.step, self.plan.steps_per_epoch)
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        if start and self.partial is not None:  # resumed mid-epoch: the epoch's and the log window's sums so far
            totals.copy_(self.partial[0])
            self.window.copy_(self.partial[1])
        self.totals, self.partial = totals, None
        t0, images = time.perf_counter(), 0
        batches = self.data.batches(
            "train",
            self.plan.micro,
            epoch=epoch,
            start=start * self.plan.accumulate,
            seed=self.loop.seed,
            augment=self.recipe.augment,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=self.device,
            channels_last=self.compute.channels_last,
            scale=self.recipe.small_scale,
        )
        micro_index = 0
        for x, y in batches:
            micro_index += 1
            last = micro_index == self.plan.accumulate
            # DDP averages gradients over processes only on the last micro-batch of a step
            sync = self.net.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
            with sync:
                loss, logits = forward_backward(
                    self.net, x, y, self.device, self.precision, self.recipe.label_smoothing, self.plan.accumulate
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
            end_of_epoch = self.step % self.plan.steps_per_epoch == 0 or self.step == self.plan.total_steps
            if self.step % self.loop.log_every == 0 or end_of_epoch:
                self.log_window(lr, epoch)
            if end_of_epoch:
                self.end_epoch(lr, totals, time.perf_counter() - t0, images)
                return
            if self.loop.checkpoint_every and self.step % self.loop.checkpoint_every == 0:
                self.save()
            if stop_requested(stop, self.dist, self.device):
                self.seconds += time.perf_counter() - t0
                self.save()
                raise Interrupted(
                    f"stopped by signal at step {self.step}/{self.plan.total_steps}; the checkpoint is saved",
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
        row = MetricsRow(self.step, self.step / self.plan.steps_per_epoch, lr, loss_sum / count, wrong / count)
        self.pending.append(row)
        bad = int(self.first_bad)
        if bad >= 0 or not math.isfinite(loss_sum):
            self.flush_metrics()
            raise self.non_finite(f"the loss became non-finite at step {max(bad, 0) + 1} (epoch {epoch + 1})")
        self.schedule.observe_train_error(self.step - 1, row.train_error)
        speed = count / max(now - self.window_t0, 1e-9)
        self.bar.update(self.step, dataclasses.replace(row, images_per_second=speed))
        self.window.zero_()
        self.window_t0 = now

    def end_epoch(self, lr: float, totals: torch.Tensor, train_seconds: float, images: int) -> None:
        self.seconds += train_seconds
        self.dist.all_reduce_sum(totals)
        self.epoch_error = (totals[1] / totals[3].clamp(min=1)).item()
        speed = images / max(train_seconds, 1e-9)
        row = MetricsRow(self.step, self.step / self.plan.steps_per_epoch, lr, images_per_second=speed)
        line = f"epoch {self.step / self.plan.steps_per_epoch:.2f}: train error {100 * self.epoch_error:.2f}%, "
        if self.validate:
            self.last_val = val = self.evaluate("val")
            if not math.isfinite(val.loss):
                self.flush_metrics()
                raise self.non_finite(f"the validation loss became non-finite after step {self.step}")
            self.schedule.observe_val_error(val.error)
            row = dataclasses.replace(row, val_loss=val.loss, val_error=val.error, val_top5_error=val.top5_error)
            line += f"val error {100 * val.error:.2f}% (top-5 {100 * val.top5_error:.2f}%), "
        self.pending.append(row)
        self.bar.write(f"{line}{speed:.0f} img/s")
        self.save()
        self.window_t0 = time.perf_counter()

    def evaluate(self, split: str) -> EvalResult:
        batches = self.data.batches(
            split,
            self.plan.rank_batch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=self.device,
            channels_last=self.compute.channels_last,
            scale=self.recipe.small_scale,
        )
        return evaluate(self.net, batches, self.device, self.precision, self.dist)

    def finish(self) -> Summary:
        """Final weights and summary.json; with ``test``, the one evaluation on the test split."""
        test = {}
        if self.loop.test:
            result = dataclasses.replace(self.evaluate("test"), split="test", protocol="center", views_per_image=1)
            test = {"test_error": result.error, "test_top5_error": result.top5_error}
            if self.dist.is_main:
                self.run_dir.write_json(self.run_dir.eval_file("test", "center"), result.to_dict())
        summary = Summary(
            model=self.name,
            options=self.options,
            data=self.data.name,
            recipe=self.recipe.name,
            epochs=self.step / self.plan.steps_per_epoch,
            steps=self.step,
            train_error=self.epoch_error,
            val_error=None if self.last_val is None else self.last_val.error,
            val_top5_error=None if self.last_val is None else self.last_val.top5_error,
            val_images=None if self.last_val is None else self.last_val.images,
            seconds=self.seconds,
            images_per_second=self.images_seen / max(self.seconds, 1e-9),
            precision=self.precision,
            device=str(self.device),
            skipped_files=getattr(self.data, "skipped", 0),
            **test,
        )
        if self.dist.is_main:
            save_weights(self.model, self.run_dir.weights, spec=(self.name, self.options))
            self.run_dir.write_summary(summary)
        return summary


def checkpoint_to_resume(run: RunDir, cfg: TrainConfig, resume: bool) -> Checkpoint | None:
    """The checkpoint a resumed run continues from (None for a new run), if ``run`` may be used for ``cfg``."""
    if not resume:
        if run.checkpoint.exists():
            raise ValueError(f"{run.path} already holds a run; pass --resume to continue it or choose another --out")
        return None
    checkpoint = run.load_checkpoint()
    saved, given = checkpoint.config.identity(), cfg.identity()
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

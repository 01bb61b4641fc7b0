"""The one training loop: SGD with momentum over a recipe's schedule, evaluation each epoch, and a run folder
that survives interruption (SIGINT/SIGTERM), a non-finite loss or a crash without losing its last good state.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    resolve_precision,
    set_threads,
)
from .evaluate import evaluate, summarise
from .recipes import Recipe, default_recipe, get_recipe, override
from .registry import create_model, get_entry
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

    def resolved_recipe(self) -> Recipe:
        return override(get_recipe(self.recipe or default_recipe(get_entry(self.model).name)), **self.overrides)

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
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def build_model(cfg: TrainConfig, data) -> nn.Module:
    """The network for this data: its classes and channels, and VGG's small-image head below 224 px."""
    name = get_entry(cfg.model).name
    options = {"num_classes": data.num_classes, "in_channels": data.in_channels}
    if name.startswith("vgg"):
        options["head"] = "small" if data.image_size < 224 else "imagenet"
        options["image_size"] = data.image_size
    options.update(cfg.model_options)
    return create_model(name, **options)


def initialise_from(model: nn.Module, source: str) -> list[str]:
    from .models.vgg import VGG, initialise_from_a
    from .weights import load_weights

    path = Path(source)
    if path.is_dir():
        path = next((p for p in (path / "model.safetensors", path / "checkpoint.pt") if p.exists()), path)
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
        return _fit(cfg, out, resume, on_step, progress, dist, device)
    except Interrupted:  # every process stops at the same step, in order
        raise
    except BaseException as error:
        if dist.enabled:
            print(f"verydeep train: {dist.describe()} failed: {type(error).__name__}: {error}", file=sys.stderr)
        raise
    finally:
        if started:
            dist.close()


def _fit(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool,
    on_step: Callable[[int], None] | None,
    progress: bool,
    dist: Distributed,
    device: torch.device,
) -> dict:
    threads = set_threads(dist.world_size) if device.type == "cpu" else None
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    precision = resolve_precision(cfg.precision, device)
    recipe = cfg.resolved_recipe()
    run = RunDir(out)
    # Rank 0, which alone writes the folder, decides whether it may be used; every process learns the answer,
    # so that all of them go on or all stop with the same error.
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
        checkpoint = run.load_checkpoint()  # across machines, --resume needs --out on storage they all see

    if dist.local_rank != 0:
        dist.barrier()  # local rank 0 fetches a missing data set alone; the others then find it in place
    data = load_data(
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
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data)
    name, options = model.verydeep_name, model.verydeep_options
    copied = initialise_from(model, cfg.init_from) if cfg.init_from and checkpoint is None else []

    if recipe.batch_size % dist.world_size:
        raise ValueError(f"batch size {recipe.batch_size} does not split evenly over {dist.world_size} processes")
    rank_batch = recipe.batch_size // dist.world_size
    micro = cfg.micro_batch or rank_batch
    if rank_batch % micro:
        raise ValueError(f"--micro-batch {micro} must divide the per-process batch {rank_batch}")
    accumulate = rank_batch // micro
    steps_per_epoch = data.num_batches("train", rank_batch, world_size=dist.world_size)
    if steps_per_epoch == 0:
        raise ValueError(f"{data.sizes['train']} training images make no batch of {recipe.batch_size}")
    if cfg.iters is not None:
        total_steps = cfg.iters
    elif cfg.epochs is not None:
        total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    else:
        total_steps = recipe.iterations
    schedule = make_schedule(recipe, total_steps, name)

    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and dist.enabled:
        model = convert_sync_batchnorm(model, device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    step, seconds, images_seen = 0, 0.0, 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
        step, seconds, images_seen = checkpoint["step"], checkpoint["seconds"], checkpoint["images_seen"]

    if dist.is_main:
        run.create()
        run.write_config(
            {
                "train": cfg.to_dict(),
                "recipe": dataclasses.asdict(recipe),
                "model": {"name": name, "options": options},
                "data": {
                    "name": data.name,
                    "sizes": data.sizes,
                    "classes": data.classes,
                    "image_size": data.image_size,
                    "in_channels": data.in_channels,
                },
                "mean": data.mean.tolist(),
                "run": {
                    "device": str(device),
                    "precision": precision,
                    "world_size": dist.world_size,
                    "steps_per_epoch": steps_per_epoch,
                    "total_steps": total_steps,
                    "micro_batch": micro,
                },
            }
        )
        if checkpoint is not None:
            run.truncate_metrics(step)
    net = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    def make_checkpoint() -> dict:
        return {
            "verydeep": {"model": name, "options": options},
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "step": step,
            "seconds": seconds,
            "images_seen": images_seen,
        }

    tensorboard = open_tensorboard(run.path) if dist.is_main else None
    bar = Progress(total_steps, step, enabled=progress and dist.is_main)
    if copied:
        bar.write(f"initialised from {cfg.init_from}: {', '.join(copied)}")
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
    if threads is not None and dist.enabled and threads * local_processes < physical_cores():
        bar.write(
            f"{threads} thread(s) in each of {local_processes} processes on {physical_cores()} cores: torchrun sets "
            f"OMP_NUM_THREADS=1 unless it is set; OMP_NUM_THREADS={physical_cores() // local_processes} uses them all"
        )
    pending: list[dict] = []
    window = torch.zeros(4, dtype=torch.float64, device=device)  # loss, errors, top-5 errors, images
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    last_val: dict = {}
    epoch_error = math.nan
    window_t0 = time.perf_counter()

    def flush_metrics():
        if dist.is_main and pending:
            run.append_metrics(pending)
            if tensorboard is not None:
                for row in pending:
                    for key in ("lr", "train_loss", "train_error", "val_loss", "val_error", "val_top5_error"):
                        if row.get(key) is not None:
                            tensorboard.add_scalar(key, row[key], row["step"])
        pending.clear()

    if checkpoint is None and dist.is_main:
        run.save_checkpoint(make_checkpoint())  # a last good state exists from the first step on
    net.train()
    try:
        with StopSignal() as stop:
            while step < total_steps:
                epoch, start = divmod(step, steps_per_epoch)
                epoch_totals = torch.zeros(4, dtype=torch.float64, device=device)
                epoch_t0, epoch_images = time.perf_counter(), 0
                batches = data.batches(
                    "train",
                    micro,
                    epoch=epoch,
                    start=start * accumulate,
                    seed=cfg.seed,
                    rank=dist.rank,
                    world_size=dist.world_size,
                    device=device,
                    channels_last=cfg.channels_last,
                )
                micro_index = 0
                for x, y in batches:
                    last = micro_index == accumulate - 1
                    sync = net.no_sync() if dist.enabled and not last else contextlib.nullcontext()
                    with sync:
                        loss, logits = forward_backward(
                            net, x, y, device, precision, recipe.label_smoothing, accumulate
                        )
                    stats = summarise(logits.float(), y)
                    window += stats
                    epoch_totals += stats
                    first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
                    micro_index += 1
                    if not last:
                        continue
                    micro_index = 0
                    lr = schedule.lr(step)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    images_seen += recipe.batch_size
                    epoch_images += recipe.batch_size
                    if on_step is not None:
                        on_step(step)
                    end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
                    if step % cfg.log_every == 0 or end_of_epoch:
                        dist.all_reduce_sum(window)
                        loss_sum, wrong, _, count = window.tolist()
                        now = time.perf_counter()
                        row = {
                            "step": step,
                            "epoch": step / steps_per_epoch,
                            "lr": lr,
                            "train_loss": loss_sum / count,
                            "train_error": wrong / count,
                            "images_per_second": count / max(now - window_t0, 1e-9),
                        }
                        bad = int(first_bad)
                        if bad >= 0 or not math.isfinite(loss_sum):
                            pending.append({k: v for k, v in row.items() if k != "images_per_second"})
                            flush_metrics()
                            raise NonFiniteLoss(
                                f"the loss became non-finite at step {max(bad, 0) + 1} (epoch {epoch + 1}); "
                                f"training stopped and the last good checkpoint ({run.checkpoint}) was kept. "
                                "Lower --lr, or use --precision fp32 if bf16 overflowed."
                            )
                        schedule.observe_train_error(step - 1, row["train_error"])
                        pending.append({k: v for k, v in row.items() if k != "images_per_second"})
                        bar.update(step, row)
                        window.zero_()
                        window_t0 = now
                    if end_of_epoch:
                        train_seconds = time.perf_counter() - epoch_t0
                        seconds += train_seconds
                        dist.all_reduce_sum(epoch_totals)
                        epoch_error = (epoch_totals[1] / epoch_totals[3].clamp(min=1)).item()
                        last_val = evaluate(
                            net,
                            data.batches(
                                "val",
                                rank_batch,
                                rank=dist.rank,
                                world_size=dist.world_size,
                                device=device,
                                channels_last=cfg.channels_last,
                            ),
                            device,
                            precision,
                            dist,
                        )
                        schedule.observe_val_error(last_val["error"])
                        pending.append(
                            {
                                "step": step,
                                "epoch": step / steps_per_epoch,
                                "lr": lr,
                                "val_loss": last_val["loss"],
                                "val_error": last_val["error"],
                                "val_top5_error": last_val["top5_error"],
                                "images_per_second": epoch_images / max(train_seconds, 1e-9),
                            }
                        )
                        bar.write(
                            f"epoch {step / steps_per_epoch:.2f}: train error {100 * epoch_error:.2f}%, "
                            f"val error {100 * last_val['error']:.2f}% (top-5 {100 * last_val['top5_error']:.2f}%), "
                            f"{epoch_images / max(train_seconds, 1e-9):.0f} img/s"
                        )
                        flush_metrics()
                        if dist.is_main:
                            run.save_checkpoint(make_checkpoint())
                        window_t0 = time.perf_counter()
                        break
                    elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                        flush_metrics()
                        if dist.is_main:
                            run.save_checkpoint(make_checkpoint())
                    if stop_requested(stop, dist, device):
                        seconds += time.perf_counter() - epoch_t0
                        flush_metrics()
                        if dist.is_main:
                            run.save_checkpoint(make_checkpoint())
                        raise Interrupted(
                            f"stopped by signal at step {step}/{total_steps}; the checkpoint is saved. "
                            f"Continue with: verydeep train --out {run.path} --resume"
                        )
    finally:
        bar.close()
        if tensorboard is not None:
            tensorboard.close()

    summary = {
        "model": name,
        "options": options,
        "data": data.name,
        "recipe": recipe.name,
        "epochs": step / steps_per_epoch,
        "steps": step,
        "train_error": epoch_error,
        "val_error": last_val.get("error"),
        "val_top5_error": last_val.get("top5_error"),
        "val_images": last_val.get("images"),
        "seconds": seconds,
        "images_per_second": images_seen / max(seconds, 1e-9),
        "precision": precision,
        "device": str(device),
        "skipped_files": getattr(data, "skipped", 0),
    }
    if cfg.test:
        result = evaluate(
            net,
            data.batches(
                "test",
                rank_batch,
                rank=dist.rank,
                world_size=dist.world_size,
                device=device,
                channels_last=cfg.channels_last,
            ),
            device,
            precision,
            dist,
        )
        summary.update(test_error=result["error"], test_top5_error=result["top5_error"])
        if dist.is_main:
            run.write_json(run.path / "eval_test_center.json", {"split": "test", "protocol": "center", **result})
    if dist.is_main:
        save_weights(model, run.weights)
        run.write_json(run.summary, summary)
    return summary


def checkpoint_to_resume(run: RunDir, cfg: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint a resumed run continues from (None for a new run), if ``run`` may be used for ``cfg``."""
    if not resume:
        if run.checkpoint.exists():
            raise ValueError(f"{run.path} already holds a run; pass --resume to continue it or choose another --out")
        return None
    checkpoint = run.load_checkpoint()
    saved = checkpoint["config"]
    for key in TrainConfig.IDENTITY:
        if saved.get(key) != getattr(cfg, key):
            raise ValueError(
                f"--resume: the run in {run.path} has {key}={saved.get(key)!r}, not {getattr(cfg, key)!r}; "
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

"""A run's set-up, made once at the edge: the config's names resolved into the typed objects the training loop
(train.py) works with: the recipe, the data, the network, the batch arithmetic, where it computes, when it logs,
checkpoints and tests, and the checkpoint it resumes from. Nothing past ``resolve`` looks a name up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig
from .data import Files, Sampling, open_data
from .data.base import Data
from .device import Distributed, resolve_precision
from .models.layers import input_channels, output_classes
from .recipes import RECIPES, Recipe
from .registry import create_model, get_entry, implied_options, is_registered, options_for_data
from .runs import Checkpoint, RunDir


def build_model(cfg: TrainConfig, data: Data) -> nn.Module:
    """The registered network for this data: its classes and channels, and VGG's small-image head below 224 px."""
    name = get_entry(cfg.model).name
    options = options_for_data(name, data.num_classes, data.in_channels, data.image_size)
    options.update(implied_options(cfg.model))  # vgg16_bn: batch_norm=True
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


@dataclass(frozen=True)
class StepPlan:
    """How the recipe's batch becomes optimizer steps on each process."""

    rank_batch: int  # images of each step on each process
    micro: int  # images of each forward and backward pass
    accumulate: int  # micro-batches a step
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def make(cls, cfg: TrainConfig, recipe: Recipe, data: Data, world_size: int) -> StepPlan:
        if recipe.batch_size % world_size:
            raise ValueError(f"batch size {recipe.batch_size} does not split evenly over {world_size} processes")
        rank_batch = recipe.batch_size // world_size
        micro = cfg.micro_batch or rank_batch
        if rank_batch % micro:
            raise ValueError(f"--micro-batch {micro} must divide the per-process batch {rank_batch}")
        steps_per_epoch = data.num_batches("train", rank_batch, world_size=world_size)
        if steps_per_epoch == 0:
            raise ValueError(
                f"{data.name} has {data.sizes['train']:,} training images, fewer than one batch of "
                f"{recipe.batch_size}: give --batch-size N with N at most that, or more images"
            )
        if cfg.iters is not None:
            total = cfg.iters
        elif cfg.epochs is not None:
            total = max(1, round(cfg.epochs * steps_per_epoch))
        else:
            total = recipe.iterations
        return cls(rank_batch, micro, rank_batch // micro, steps_per_epoch, total)


@dataclass(frozen=True)
class Compute:
    """Where and how the steps run."""

    device: torch.device
    precision: str  # resolved: what autocast runs (bf16 where the hardware has it natively, else fp32)
    dist: Distributed
    threads: int | None  # each process's threads on a CPU; None on a GPU
    channels_last: bool
    compile: bool
    sync_bn: bool


@dataclass(frozen=True)
class Loop:
    """When the loop logs, checkpoints and tests."""

    seed: int
    log_every: int  # steps between metrics rows
    checkpoint_every: int | None  # steps between checkpoints (always at the end of each epoch)
    test: bool  # the one evaluation on the test split at the end


@dataclass(frozen=True)
class Setup:
    """A config's names resolved, once, into the objects a run trains with (``resolve``)."""

    config: TrainConfig  # what was asked, as the run's record and checkpoints keep it; the loop reads no field of it
    recipe: Recipe
    data: Data
    model: nn.Module  # as built (or given), on the CPU; in a fresh run started from ``init_from``
    name: str  # the registered name, or the config's name for a network built in Python
    options: dict  # what the registered builder was given ({} for a network built in Python)
    plan: StepPlan
    compute: Compute
    loop: Loop
    checkpoint: Checkpoint | None  # what a resumed run continues from; None for a fresh run
    init_from: str | None
    copied: tuple[str, ...]  # the layers ``init_from`` copied into the model


def resolve(
    cfg: TrainConfig,
    dist: Distributed,
    device: torch.device,
    threads: int | None = None,
    checkpoint: Checkpoint | None = None,
    model: nn.Module | None = None,
    data: Data | None = None,
) -> Setup:
    """Turn the config's names into objects: the recipe, the data, the network (``model`` if given, else the
    registered one, started from --init-from in a fresh run), the data (``data`` if already loaded by
    ``load_shared``), the batch arithmetic, where it computes and when the loop logs, checkpoints and tests."""
    recipe = cfg.resolved_recipe()
    data = data or load_shared(cfg, recipe, dist)
    check_small_scale(recipe, data)
    if data.sizes.get("val", 0) == 0 and recipe.schedule == "plateau":
        raise ValueError(
            "the plateau schedule lowers the rate when the val error stops falling, and --val-size 0 leaves no "
            "val split: give --val-size 1 or more, or --schedule step or cosine"
        )
    torch.manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg, data)
        name, options = model.verydeep_name, model.verydeep_options
    else:
        check_fits(cfg, model, data)
        name, options = cfg.model, {}
    copied = initialise_from(model, cfg.init_from) if cfg.init_from and checkpoint is None else []
    compute = Compute(device, resolve_precision(cfg.precision, device), dist, threads, cfg.channels_last,
                      cfg.compile, cfg.sync_bn)  # fmt: skip
    loop = Loop(cfg.seed, cfg.log_every, cfg.checkpoint_every, cfg.test)
    plan = StepPlan.make(cfg, recipe, data, dist.world_size)
    return Setup(cfg, recipe, data, model, name, options, plan, compute, loop, checkpoint, cfg.init_from,
                 tuple(copied))  # fmt: skip


def load_shared(cfg: TrainConfig, recipe: Recipe, dist: Distributed) -> Data:
    """The config's data set; under torchrun local rank 0 fetches a missing one alone, the others then find it."""
    if dist.local_rank != 0:
        dist.barrier()
    sampling = Sampling(recipe.mean, cfg.val_size, cfg.subset)
    files = Files(cfg.image_size, cfg.skip_bad, recipe.scale, recipe.color_jitter, cfg.workers)
    data = open_data(cfg.data, cfg.data_dir, sampling, files)
    if dist.local_rank == 0:
        dist.barrier()
    return data


def check_small_scale(recipe: Recipe, data: Data) -> None:
    """In-memory scale jittering needs images held in memory and sides a crop of their size fits in."""
    if not recipe.small_scale:
        return
    if not data.in_memory:
        raise ValueError(
            f"--small-scale jitters images held in memory; {data.name} is an image folder, which jitters by "
            "--scale SMIN,SMAX"
        )
    if recipe.small_scale[0] < data.image_size:
        raise ValueError(
            f"--small-scale {','.join(map(str, recipe.small_scale))} starts below {data.name}'s "
            f"{data.image_size} px images, so no {data.image_size} px crop fits: give Smin >= {data.image_size}"
        )


def check_named_apart(cfg: TrainConfig) -> None:
    """A network built in Python has a name of its own in the config, and a recipe (it has no paper's)."""
    if is_registered(cfg.model):
        raise ValueError(
            f"the config names the registered model {cfg.model!r}, but a network built in Python was given: "
            "name it apart, e.g. TrainConfig(model='my_net', recipe=...), or leave model= out to build the "
            "registered one"
        )
    if cfg.recipe is None:
        raise ValueError(
            f"{cfg.model!r} is not a registered model, so it has no paper's recipe: give one, e.g. "
            f"TrainConfig(model={cfg.model!r}, recipe='resnet_cifar'); valid recipes: {', '.join(RECIPES)}"
        )


def check_fits(cfg: TrainConfig, model: nn.Module, data: Data) -> None:
    """A network built in Python takes the data's images and scores its classes."""
    channels, classes = input_channels(model), output_classes(model)
    if channels not in (None, data.in_channels) or classes not in (None, data.num_classes):
        raise ValueError(
            f"{cfg.model} takes {channels}-channel images and scores {classes} classes; {data.name} has "
            f"{data.in_channels}-channel images of {data.num_classes} classes"
        )

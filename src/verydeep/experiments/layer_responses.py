"""Strength of layer responses (ResNet Fig. 7): the standard deviation of each 3x3 layer's output, after BN and
before the nonlinearity (and, in a ResNet, before the addition), on validation images.

The paper: ResNets respond more weakly than plain nets, and deeper ResNets more weakly still, "supporting
that residual functions might be generally closer to zero than the non-residual functions".
"""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

import torch
from torch import nn

from ..data import load_data
from ..models.resnet import BasicBlock, ResNet
from ..runs import RunDir
from ..weights import load_weights
from . import degradation
from .base import Experiment, Preset, Quantity, RunResult, Runs, RunSpec
from .plots import line_panels, over_seeds, seeds_note

IMAGES = 500  # validation images the responses are measured on


def response_layers(model: ResNet) -> list[nn.BatchNorm2d]:
    """The BN after every 3x3 conv, in order: the first conv's, then each block's two."""
    layers = [model.bn1] if model.conv1.kernel_size == (3, 3) else []
    for m in model.modules():
        if isinstance(m, BasicBlock):
            layers += [m.bn1, m.bn2]
    return layers


@torch.no_grad()
def response_stds(model: ResNet, images: torch.Tensor) -> list[float]:
    stds: list[float] = []
    hooks = [bn.register_forward_hook(lambda mod, args, out: stds.append(out.float().std().item()))
             for bn in response_layers(model)]  # fmt: skip
    try:
        model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    return stds


@functools.lru_cache(maxsize=4)
def validation_images(folder: Path) -> torch.Tensor:
    """The first IMAGES validation images of the run's data, split as the run split it."""
    record = RunDir(folder).read_record()
    train = record.train
    data = load_data(train.data, train.data_dir, mean=record.recipe.mean, subset=train.subset,
                     val_size=train.val_size)  # fmt: skip
    return next(iter(data.batches("val", IMAGES)))[0]


@functools.lru_cache(maxsize=64)
def responses(folder: Path) -> tuple[float, ...]:
    """The trained run's response std per 3x3 layer, on its first IMAGES validation images (kept in the run
    folder once measured)."""
    run = RunDir(folder)
    measure = lambda: response_stds(load_weights(run.weights), validation_images(folder))  # noqa: E731
    return tuple(run.measured("responses", {"validation_images": IMAGES}, measure))


def mean_response(result: RunResult, runs: Runs) -> float:
    return statistics.fmean(responses(result.path))


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    labels = list(next(iter(seeds.values())))
    ordered = {label: [list(responses(r.path)) for r in over_seeds(seeds, label)] for label in labels}
    ranked = {label: [sorted(v, reverse=True) for v in values] for label, values in ordered.items()}
    return [
        line_panels({"in layer order": ordered, "sorted by magnitude": ranked}, out / "layer_responses.png",
                    "3x3 layer index", f"std of the response (after BN), {seeds_note(seeds)}"),
    ]  # fmt: skip


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    return degradation.runs(args, preset)


EXPERIMENT = Experiment(
    name="layer_responses",
    title="Strength of layer responses in plain nets and ResNets",
    source="ResNet Fig. 7",
    paper="the standard deviations of the 3x3 layers' responses (after BN, before the nonlinearity) are smaller "
    "for ResNets than for their plain counterparts, and smaller for deeper ResNets (ResNet-110 < 56 < 20).",
    recipe="resnet_cifar",
    defaults={"depths": (20, 56)},
    presets=degradation.SHARED_PRESETS,  # the same runs as the degradation experiment: trained once, shared
    runs=runs,
    quantities={"response_std": Quantity("mean response std", mean_response, unit="value")},
    figures=figures,
    names=degradation.names,
    deviations=degradation.EXPERIMENT.deviations,
)

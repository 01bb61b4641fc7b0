"""Strength of layer responses (ResNet Fig. 7): the standard deviation of each 3x3 layer's output, after BN and
before the nonlinearity (and, in a ResNet, before the addition), on validation images.

The paper: ResNets respond more weakly than plain nets, and deeper ResNets more weakly still, "supporting
that residual functions might be generally closer to zero than the non-residual functions".
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch import nn

from ..data import load_data
from ..models.resnet import BasicBlock, ResNet
from ..runs import RunDir
from ..weights import load_weights
from . import degradation
from .base import Experiment, Preset, RunResult, RunSpec, Verdict
from .plots import line_panels

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


def validation_images(result: RunResult) -> torch.Tensor:
    record = RunDir(result.path).read_record()
    train = record.train
    data = load_data(train.data, train.data_dir, mean=record.recipe.mean, subset=train.subset,
                     val_size=train.val_size)  # fmt: skip
    batches = data.batches("val", IMAGES)
    return next(iter(batches))[0]


def analyse(results: dict[str, RunResult]) -> dict:
    """Each run's response std per 3x3 layer, on the same validation images."""
    images = validation_images(next(iter(results.values())))
    return {"responses": {label: response_stds(load_weights(RunDir(r.path).weights), images)
                          for label, r in results.items()}}  # fmt: skip


def verdicts(results: dict[str, RunResult], analysis: dict) -> list[Verdict]:
    mean = {label: statistics.fmean(v) for label, v in analysis["responses"].items()}
    depths = sorted({degradation.depth(r) for r in results.values()})
    out = []
    for d in depths:
        p, r = mean[f"plain-{d}"], mean[f"ResNet-{d}"]
        out.append(Verdict(f"ResNet-{d} responds more weakly than plain-{d}", r < p,
                           f"Mean response std ResNet-{d} {r:.3f} vs plain-{d} {p:.3f}."))  # fmt: skip
    if len(depths) > 1:
        shallow, deep = mean[f"ResNet-{depths[0]}"], mean[f"ResNet-{depths[-1]}"]
        out.append(Verdict(f"the deeper ResNet-{depths[-1]} responds more weakly than ResNet-{depths[0]}",
                           deep < shallow, f"Mean response std {deep:.3f} vs {shallow:.3f}."))  # fmt: skip
    return out


def figures(results: dict[str, RunResult], analysis: dict, out: Path) -> list[Path]:
    ordered = analysis["responses"]
    ranked = {label: sorted(values, reverse=True) for label, values in ordered.items()}
    return [
        line_panels({"in layer order": ordered, "sorted by magnitude": ranked}, out / "layer_responses.png",
                    "3x3 layer index", "std of the response (after BN)"),
    ]  # fmt: skip


def table(results: dict[str, RunResult], analysis: dict) -> tuple[list[str], list[list[str]]]:
    header = ["run", "3x3 layers", "mean response std", "largest", "smallest"]
    rows = [[label, str(len(v)), f"{statistics.fmean(v):.3f}", f"{max(v):.3f}", f"{min(v):.3f}"]
            for label, v in analysis["responses"].items()]  # fmt: skip
    return header, rows


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
    presets=degradation.EXPERIMENT.presets,  # the same runs as the degradation experiment: trained once, shared
    runs=runs,
    figures=figures,
    verdicts=verdicts,
    table=table,
    analyse=analyse,
    deviations=degradation.EXPERIMENT.deviations,
)

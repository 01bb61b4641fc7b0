"""Gradient norms through the depth (ResNet Sec. 4.1): "the backward propagated gradients exhibit healthy norms
with BN. So neither forward nor backward signals vanish."

For each run of the degradation experiment, on one batch of ``BATCH`` training images (unaugmented; in training
mode, so that BN normalises by the batch as in training), the norm of every conv layer's weight gradient of the
cross-entropy loss: at initialisation (the network rebuilt from the run's seed exactly as the run built it) and
with the final weights. Two readings, each defined before any verdict seed ran:

- the floor: log10 of the smallest layer's norm over the last conv layer's, the lower at the two moments; a
  gradient "vanishes" below 1% of the last layer's (-2);
- the spread: log10 of the largest layer's norm over the smallest's, the higher at the two moments; the norms
  are "healthy" within two decades of one another (2).

A first look (one batch of 128 Fashion-MNIST images at initialisation) found first conv against last: plain-20
9.2x, plain-56 2,650x; ResNet-20 1.8x, ResNet-56 7.2x: nothing vanishes, but in the plain nets the gradient grows
towards the input, as the mean-field theory of BatchNorm predicts for nets without shortcuts (Yang et al. 2019).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import load_data
from ..runs import RunDir
from ..setup import build_model
from ..weights import load_weights
from . import degradation
from .base import Experiment, Quantity, RunResult, Runs
from .plots import line_panels, over_seeds, seeds_note

BATCH = 128
VANISHES_BELOW = math.log10(0.01)  # a layer's gradient under 1% of the last conv layer's has vanished
HEALTHY_WITHIN = math.log10(100)  # every layer's within two decades of every other's: healthy
MOMENTS = ("initialisation", "end of training")


def conv_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """The norm of each conv layer's weight gradient of the loss on one batch, in the order of the layers."""
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Conv2d)]


@functools.lru_cache(maxsize=64)
def norms(folder: Path) -> dict[str, tuple[float, ...]]:
    """The run's per-layer gradient norms at initialisation and with its final weights (kept in the run folder
    once measured)."""
    measured = RunDir(folder).measured("gradient_norms", {"batch": BATCH}, lambda: measure_norms(folder))
    return {moment: tuple(measured[moment]) for moment in MOMENTS}


def measure_norms(folder: Path) -> dict[str, list[float]]:
    record = RunDir(folder).read_record()
    cfg = record.train
    data = load_data(cfg.data, cfg.data_dir, mean=record.recipe.mean, subset=cfg.subset, val_size=cfg.val_size,
                     image_size=cfg.image_size)  # fmt: skip
    images, labels = next(iter(data.batches("train", BATCH, seed=cfg.seed, augment=False)))
    torch.manual_seed(cfg.seed)  # as setup.resolve seeds it just before the network is built
    initial = build_model(cfg, data)
    final = load_weights(RunDir(folder).weights)
    return {MOMENTS[0]: conv_gradient_norms(initial, images, labels),
            MOMENTS[1]: conv_gradient_norms(final, images, labels)}  # fmt: skip


def floor(result: RunResult, runs: Runs) -> float:
    """log10 of the smallest layer's norm over the last layer's, the lower at the two moments."""
    return min(math.log10(min(n) / n[-1]) for n in norms(result.path).values())


def spread(result: RunResult, runs: Runs) -> float:
    """log10 of the largest layer's norm over the smallest's, the higher at the two moments."""
    return max(math.log10(max(n) / min(n)) for n in norms(result.path).values())


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    labels = list(next(iter(seeds.values())))
    panels = {
        moment: {label: [[math.log10(g / n[moment][-1]) for g in n[moment]]
                         for n in (norms(r.path) for r in over_seeds(seeds, label))] for label in labels}
        for moment in MOMENTS
    }  # fmt: skip
    title = f"Each conv layer's weight-gradient norm against the last one's ({seeds_note(seeds)})"
    return [line_panels(panels, out / "gradients.png", "conv layer (input to output)",
                        "log10 (norm / last layer's)", title)]  # fmt: skip


def vanishing_line(result: RunResult, runs: Runs) -> float:
    return VANISHES_BELOW


def healthy_band(result: RunResult, runs: Runs) -> float:
    return HEALTHY_WITHIN


EXPERIMENT = Experiment(
    name="gradients",
    title="Gradient norms through the depth, plain nets and ResNets",
    source="ResNet Sec. 4.1",
    paper='"These plain networks are trained with BN, which ensures forward propagated signals to have non-zero '
    'variances. We also verify that the backward propagated gradients exhibit healthy norms with BN. So neither '
    'forward nor backward signals vanish." (no figure: the paper states it)',
    recipe="resnet_cifar",
    defaults={"depths": (20, 56)},
    presets=degradation.SHARED_PRESETS,  # the degradation runs, measured: nothing is trained twice
    runs=degradation.runs,
    quantities={
        "gradient_floor": Quantity("log10 smallest layer gradient / last layer's", floor, unit="value"),
        "gradient_spread": Quantity("log10 largest layer gradient / smallest", spread, unit="value"),
        "vanishing_line": Quantity("the line of 1% (log10)", vanishing_line, unit="value"),
        "healthy_band": Quantity("the band of two decades (log10)", healthy_band, unit="value"),
    },
    figures=figures,
    names=degradation.names,
    deviations=(*degradation.EXPERIMENT.deviations,
                f"norms on one batch of {BATCH} training images, at initialisation and at the end of training"),
)  # fmt: skip

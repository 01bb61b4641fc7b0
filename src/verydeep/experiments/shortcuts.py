"""Identity against projection shortcuts (ResNet Table 3): options A, B and C on one ResNet."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import paper
from ..models.resnet import IMAGENET_STAGES
from .base import RESNET_SMOKE, TRAIN_ERROR, VAL_ERROR, Experiment, Preset, Runs, RunSpec
from .plots import error_curves, over_seeds, seeds_note


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    if len(args["depths"]) != 1:
        raise ValueError("shortcuts compares options A, B and C on one network: give one depth, e.g. --depths 20")
    depth = args["depths"][0]
    recipe = "resnet_imagenet" if depth in IMAGENET_STAGES else "resnet_cifar"
    return [RunSpec(f"option {o}", f"resnet{depth}", {"shortcut": o}, group="ResNet", recipe=recipe) for o in "ABC"]


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    panel = {"shortcut options": [over_seeds(seeds, f"option {o}") for o in "ABC"]}
    return [error_curves(panel, out / "shortcuts.png", f"Shortcut options A, B, C ({seeds_note(seeds)})")]


def paper_figure(spec: RunSpec) -> str:
    top1, top5 = paper.RESNET_TABLE3_SHORTCUTS[spec.options["shortcut"]]
    return f"{top1} / {top5} (ResNet-34 top-1 / top-5, 10-crop)"


QUICK = Preset(
    "3 seeds of 6 epochs on 12,000 training images, batch 128, lr 0.1 divided by 10 at 50% and 75%",
    epochs=6,
    subset=12_000,
    log_every=10,
    seeds=3,
)

EXPERIMENT = Experiment(
    name="shortcuts",
    title="Shortcut options A, B and C",
    source="ResNet Table 3",
    paper="on ImageNet ResNet-34, B (24.52% top-1) is slightly better than A (25.03%) and C (24.19%) marginally "
    "better than B; the differences are small, so projections are not essential to the degradation problem.",
    recipe="resnet_cifar",
    defaults={"depths": (20,)},
    presets={
        "smoke": RESNET_SMOKE,
        "quick": QUICK,
        "standard": dataclasses.replace(
            QUICK,
            description="3 seeds of 8 epochs on 22,000 training images, otherwise as quick",
            epochs=8,
            subset=22_000,
            log_every=20,
        ),
        "full": Preset("the paper's CIFAR schedule: 64k iterations of batch 128", seeds=5),
    },  # fmt: skip
    runs=runs,
    quantities={"val_error": VAL_ERROR, "train_error": TRAIN_ERROR},
    figures=figures,
    paper_figure=paper_figure,
    deviations=(
        "a CIFAR-style ResNet-20 on Fashion-MNIST instead of ResNet-34 on ImageNet (--depths 34 with an image "
        "folder runs the paper's)",
    ),
)

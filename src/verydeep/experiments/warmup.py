"""The ResNet-110 warm-up (ResNet Sec. 4.2): at lr 0.1 from the start the 110-layer net is slow to begin
converging; 0.01 until the training error falls below 80%, then the recipe's 0.1, starts it."""

from __future__ import annotations

from pathlib import Path

from ..recipes import get_recipe
from ..registry import get_entry
from .base import RESNET_SMOKE, TRAIN_ERROR, Experiment, Preset, Quantity, Runs, RunSpec, run_train_error
from .plots import error_curves, over_seeds, seeds_note


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    if len(args["depths"]) != 1:
        raise ValueError("warmup compares two schedules of one network: give one depth, e.g. --depths 110")
    depth = args["depths"][0]
    warmed = {get_entry(name).depth: name for name in get_recipe("resnet_cifar").warmup_for}
    if depth not in warmed:
        raise ValueError(f"the paper warms up only the deepest CIFAR ResNets: --depths {', '.join(map(str, warmed))}")
    return [
        RunSpec("warm-up", warmed[depth], group="ResNet"),  # the recipe's warm-up (resnet_cifar: warmup_for)
        RunSpec("lr 0.1 from the start", warmed[depth], overrides={"warmup_lr": 0.0}, group="ResNet"),
    ]


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    panel = {"ResNet-110": [over_seeds(seeds, "warm-up"), over_seeds(seeds, "lr 0.1 from the start")]}
    title = f"ResNet-110 with and without the 0.01 warm-up ({seeds_note(seeds)})"
    return [error_curves(panel, out / "warmup.png", title)]


EXPERIMENT = Experiment(
    name="warmup",
    title="Warming up ResNet-110",
    source="ResNet Sec. 4.2",
    paper='for the 110-layer net "the initial learning rate of 0.1 is slightly too large to start converging"; '
    "0.01 until the training error is below 80% (about 400 iterations), then 0.1, converges (6.43% test error).",
    recipe="resnet_cifar",
    defaults={"depths": (110,)},
    presets={
        "smoke": RESNET_SMOKE,
        "quick": Preset(
            "3 seeds of 100 steps of the paper's batch of 128 (12,800 training images, one epoch): the claim is "
            "about the start of training",
            epochs=1,
            subset=12_800,
            log_every=5,
            seeds=3,
        ),
        "standard": Preset(
            "3 seeds of 200 steps of the paper's batch of 128 (two epochs of 12,800 training images): half the "
            "length of the paper's warm-up",
            epochs=2,
            subset=12_800,
            log_every=5,
            seeds=3,
        ),
        "full": Preset("the paper's schedule: 64k iterations of batch 128", seeds=5),
    },
    runs=runs,
    quantities={"run_train_error": Quantity("train error % over the run", run_train_error), "train_error": TRAIN_ERROR},
    figures=figures,
    deviations=("Fashion-MNIST (28x28 grey, 10 classes) stands in for CIFAR-10 unless --data says otherwise",),
)

"""Initialising deep VGGs from a trained A (VGG Sec. 3.1) against random initialisation."""

from __future__ import annotations

from pathlib import Path

from .base import VAL_ERROR, VGG_PRESETS, Experiment, Preset, Quantity, RunResult, Runs, RunSpec
from .plots import error_curves, over_seeds, seeds_note
from .vgg_depth import model as config_model

DEEPER = ("B", "C", "D", "E")  # what A's weights can start (Sec. 3.1): its convs fit their first layers


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    unknown = [c for c in args["configs"] if c not in DEEPER]
    if unknown:
        raise ValueError(
            f"--configs {', '.join(unknown)}: A's weights start the deeper configurations {', '.join(DEEPER)}"
        )
    specs = [RunSpec("A", config_model("A"), group="A")]
    for config in args["configs"]:
        model = config_model(config)
        specs.append(RunSpec(f"{config} random", model, group=config))
        specs.append(RunSpec(f"{config} from A", model, init_from="A", group=config))
    return specs


def steps_to_reach(result: RunResult, target: float) -> int | None:
    """The first evaluated step at which the validation error is at or below ``target``."""
    for step, error in zip(*result.series("val_error")):
        if error <= target:
            return int(step)
    return None


def steps_to_a(result: RunResult, runs: Runs) -> float:
    """Steps to reach A's final validation error (the A of the same seed); a run that never does counts its
    whole length, which understates how much slower it is."""
    reached = steps_to_reach(result, runs["A"].summary.val_error)
    return float(result.summary.steps if reached is None else reached)


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    results = next(iter(seeds.values()))
    groups = sorted({r.spec.group for r in results.values()} - {"A"})
    panels = {g: [over_seeds(seeds, label) for label in ("A", f"{g} random", f"{g} from A")] for g in groups}
    title = f"Deep VGGs from random initialisation and from a trained A ({seeds_note(seeds)})"
    return [error_curves(panels, out / "vgg_init.png", title)]


EXPERIMENT = Experiment(
    name="vgg_init",
    title="VGG: starting deeper nets from a trained configuration A",
    source="VGG Sec. 3.1",
    paper="the deeper nets were trained with their first four conv layers and last three FC layers taken from a "
    "trained A, the rest random; the paper notes that Glorot initialisation also works without pre-training.",
    recipe="vgg",
    defaults={"configs": ("D", "E")},
    presets=VGG_PRESETS,
    runs=runs,
    quantities={
        "steps_to_a": Quantity("steps to reach A's val error", steps_to_a, unit="steps"),
        "val_error": VAL_ERROR,
    },  # fmt: skip
    figures=figures,
    deviations=(
        "Fashion-MNIST's 28x28 images with the small-image head; A's FC layers are the small head's",
        "A's first four convs go to the layers of the same role (1st, 3rd, 5th and 6th convs of D and E), the "
        "only places their shapes fit",
        "a run that never reaches A's error counts its whole length as its steps to reach it: this understates "
        "the gap, never overstates it",
    ),
)

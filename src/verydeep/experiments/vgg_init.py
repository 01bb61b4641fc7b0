"""Initialising deep VGGs from a trained A (VGG Sec. 3.1) against random initialisation."""

from __future__ import annotations

from pathlib import Path

from .base import VGG_PRESETS, Experiment, Preset, RunResult, RunSpec, Verdict, percent
from .plots import error_curves
from .vgg_depth import CONFIGS

DEEPER = tuple(label for label in CONFIGS if not label.startswith("A"))  # B, C, D, E: what A can start


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    unknown = [c for c in args["configs"] if c not in DEEPER]
    if unknown:
        raise ValueError(
            f"--configs {', '.join(unknown)}: A's weights start the deeper configurations {', '.join(DEEPER)}"
        )
    specs = [RunSpec("A", CONFIGS["A"], group="A")]
    for config in args["configs"]:
        model = CONFIGS[config]
        specs.append(RunSpec(f"{config} random", model, group=config))
        specs.append(RunSpec(f"{config} from A", model, init_from="A", group=config))
    return specs


def steps_to_reach(result: RunResult, target: float) -> int | None:
    """The first evaluated step at which the validation error is at or below ``target``."""
    for step, error in zip(*result.series("val_error")):
        if error <= target:
            return int(step)
    return None


def verdicts(results: dict[str, RunResult], analysis: dict) -> list[Verdict]:
    target = results["A"].summary.val_error
    out = []
    for config in sorted({r.spec.group for r in results.values()} - {"A"}):
        random, warm = results[f"{config} random"], results[f"{config} from A"]
        a, b = steps_to_reach(warm, target), steps_to_reach(random, target)
        holds = a is not None and (b is None or a < b)
        evidence = (
            f"Steps to reach A's final validation error ({percent(target)}%): from A {a or 'never'}, random "
            f"{b or 'never'}; final validation error {percent(warm.summary.val_error)}% vs "
            f"{percent(random.summary.val_error)}%."
        )
        out.append(Verdict(f"{config} initialised from A trains faster than {config} from random", holds, evidence))
    return out


def figures(results: dict[str, RunResult], analysis: dict, out: Path) -> list[Path]:
    groups = sorted({r.spec.group for r in results.values()} - {"A"})
    panels = {g: [results["A"], results[f"{g} random"], results[f"{g} from A"]] for g in groups}
    return [error_curves(panels, out / "vgg_init.png", "Deep VGGs from random initialisation and from a trained A")]


def table(results: dict[str, RunResult], analysis: dict) -> tuple[list[str], list[list[str]]]:
    target = results["A"].summary.val_error
    header = ["run", "train error %", "val error %", "steps to reach A's val error"]
    rows = [
        [label, percent(r.summary.train_error), percent(r.summary.val_error),
         "" if label == "A" else str(steps_to_reach(r, target) or "never")]
        for label, r in results.items()
    ]  # fmt: skip
    return header, rows


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
    figures=figures,
    verdicts=verdicts,
    table=table,
    deviations=(
        "Fashion-MNIST's 28x28 images with the small-image head; A's FC layers are the small head's",
        "A's first four convs go to the layers of the same role (1st, 3rd, 5th and 6th convs of D and E), the "
        "only places their shapes fit",
    ),
)

"""Test protocols (ResNet Sec. 3.4, VGG Sec. 3.2 and Table 5): the same trained nets evaluated on the validation
split with one view and with ten (five crops and their flips), and, where the paper's head allows, densely."""

from __future__ import annotations

import functools
from pathlib import Path

from ..evaluate import evaluate_protocol
from ..runs import RunDir
from ..trained import load_eval_data, load_trained
from . import degradation
from .base import Experiment, Preset, Quantity, RunResult, Runs, RunSpec
from .plots import bars, seeds_note


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    """The degradation experiment's shallower ResNet: the very runs it trains (same preset, same seeds)."""
    shallow = f"ResNet-{min(args['depths'])}"
    return [spec for spec in degradation.runs(args, preset) if spec.label == shallow]


@functools.lru_cache(maxsize=64)
def protocol_error(folder: Path, protocol: str) -> float:
    """Top-1 validation error of a trained run under ``protocol``, in fp32 on the CPU (kept in the run folder
    once measured)."""

    def measure() -> float:
        trained = load_trained(run=folder)
        return evaluate_protocol(trained.model, load_eval_data(trained), "val", protocol, trained.preprocessing).error

    return RunDir(folder).measured(f"val_{protocol}", {"split": "val", "protocol": protocol}, measure)


def centre_error(result: RunResult, runs: Runs) -> float:
    return protocol_error(result.path, "center")


def tencrop_error(result: RunResult, runs: Runs) -> float:
    return protocol_error(result.path, "tencrop")


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    (label,) = next(iter(seeds.values()))
    runs = [(by[label], by) for by in seeds.values()]
    values = [[100 * centre_error(r, by) for r, by in runs], [100 * tencrop_error(r, by) for r, by in runs]]
    return [bars(["centre view", "ten crops"], values, out / "protocols.png", "validation error (%)",
                 f"{label}: one view against ten ({seeds_note(seeds)})")]  # fmt: skip


EXPERIMENT = Experiment(
    name="protocols",
    title="Test protocols: one view against ten crops",
    source="ResNet Sec. 3.4, VGG Table 5",
    paper="both papers report multi-view testing: ResNet's comparisons use 10-crop testing (Table 2); VGG's dense "
    "evaluation and multi-crop (24.8% and 24.6% top-1 for D) combined give 24.4% (Table 5).",
    recipe="resnet_cifar",
    defaults={"depths": (20, 56)},
    presets=degradation.SHARED_PRESETS,  # the degradation runs themselves: trained once, shared
    runs=runs,
    quantities={
        "centre_error": Quantity("centre-view val error %", centre_error),
        "tencrop_error": Quantity("ten-crop val error %", tencrop_error),
    },  # fmt: skip
    figures=figures,
    names=degradation.names,
    deviations=degradation.EXPERIMENT.deviations
    + (
        "the ten crops of a 28 px image are cut from it zero-padded by 4 pixels, as its training crops were; the "
        "paper's come from a 256 px image",
    ),  # fmt: skip
)

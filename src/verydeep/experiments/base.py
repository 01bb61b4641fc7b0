"""What an experiment is: which runs, with which preset, what to plot, what the paper reported, and how each
claim's verdict is decided. The training itself is always ``train.fit``; runs are never trained twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainConfig
from ..runs import MetricsRow, RunDir, Summary


@dataclass(frozen=True)
class Preset:
    """How big the runs are. ``overrides`` are recipe fields changed for this preset (all stated in the report)."""

    description: str
    epochs: float | None = None  # None: the recipe's own length
    subset: int | None = None
    val_size: int | None = None
    overrides: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)  # given to every run's network
    log_every: int = 50
    extra: dict = field(default_factory=dict)  # experiment-specific knobs, e.g. zero-init for the ResNets


# The VGG experiments share their presets, so that vgg_init starts from the very A that vgg_depth trained.
VGG_PRESETS = {
    "smoke": Preset(
        "two steps of each run on 128 images: checks the pipeline, shows nothing",
        subset=128,
        overrides={"batch_size": 32, "iterations": 2, "schedule": "step", "milestones": (0.5,)},
        log_every=1,
        model_options={"init": "kaiming"},
    ),
    "quick": Preset(
        "4 epochs on 6,000 training images; unlike the paper, a batch of 64 at the paper's lr 0.01, divided by "
        "10 at 50% and 75% of the run rather than on plateaus, and He initialisation (He et al. 2015, made for "
        "training such nets from scratch) for every layer that is not copied: with N(0, 0.01^2) or Glorot "
        "initialisation no configuration leaves chance level within so few steps on [0, 1]-scaled pixels",
        epochs=4,
        subset=6_000,
        overrides={"batch_size": 64, "schedule": "step", "milestones": (0.5, 0.75)},
        log_every=10,
        model_options={"init": "kaiming"},
    ),
    "full": Preset(
        "the paper's recipe: batch 256, lr 0.01 divided by 10 on plateaus, 370k iterations, with Glorot "
        "initialisation, which the paper found to work without pre-training (Sec. 3.1)",
        model_options={"init": "glorot"},
    ),
}


# The ResNet experiments' pipeline check.
RESNET_SMOKE = Preset(
    "a few steps on 256 images: checks the pipeline, shows nothing",
    epochs=1,
    subset=256,
    overrides={"batch_size": 32},
    log_every=2,
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment."""

    label: str  # how the report and the figures name it, e.g. "plain-56"
    model: str
    options: dict = field(default_factory=dict)  # model options beyond the preset's
    overrides: dict = field(default_factory=dict)  # recipe fields beyond the preset's
    init_from: str | None = None  # the label of a run (of this experiment) whose weights start this one
    group: str = ""  # figures draw each group in its own panel
    recipe: str | None = None  # default: the experiment's


@dataclass
class RunResult:
    spec: RunSpec
    path: Path
    summary: Summary
    metrics: list[MetricsRow]

    def series(self, column: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one metrics column, skipping the rows that leave it empty."""
        rows = [r for r in self.metrics if getattr(r, column) is not None]
        return [r.step for r in rows], [getattr(r, column) for r in rows]


@dataclass(frozen=True)
class Verdict:
    claim: str
    reproduced: bool
    evidence: str  # the numbers the verdict was decided on
    within_noise: bool = False  # the margin is smaller than what the same run varies by


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # the paper's figure or table
    paper: str  # what the paper reported, in a sentence or a markdown table
    recipe: str
    presets: dict[str, Preset]
    runs: Callable[[dict, Preset], list[RunSpec]]  # from the experiment's arguments (e.g. depths) and preset
    # Each of these gets the runs' results and what ``analyse`` measured on the trained models (or {}).
    figures: Callable[[dict[str, RunResult], dict, Path], list[Path]]
    verdicts: Callable[[dict[str, RunResult], dict], list[Verdict]]
    table: Callable[[dict[str, RunResult], dict], tuple[list[str], list[list[str]]]]
    deviations: tuple[str, ...] = ()  # how our runs differ from the paper's, stated in the report
    defaults: dict = field(default_factory=dict)  # the experiment's arguments (e.g. {"depths": (20, 56)})
    analyse: Callable[[dict[str, RunResult]], dict] | None = None  # measurements on the trained models


def run_config(experiment: Experiment, preset: Preset, spec: RunSpec, data: str, data_dir: str | None, seed: int):
    return TrainConfig(
        model=spec.model,
        data=data,
        data_dir=data_dir,
        recipe=spec.recipe or experiment.recipe,
        overrides={**preset.overrides, **spec.overrides},
        model_options={**preset.model_options, **spec.options},
        epochs=preset.epochs,
        subset=preset.subset,
        val_size=preset.val_size,
        seed=seed,
        log_every=preset.log_every,
        test=False,
    )


def run_key(config: TrainConfig) -> str:
    """A name for a run folder that changes whenever anything that decides the run does: the config's identity,
    compared by meaning as a resumed run's is (vgg16 is vgg_d, a recipe by its values), and the run's length."""
    identity = config.identity()
    decisive = {**identity, "recipe": dataclasses.asdict(identity["recipe"]), "epochs": config.epochs,
                "iters": config.iters}  # fmt: skip
    digest = hashlib.sha1(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{identity['model']}-{digest}"


def load_result(spec: RunSpec, path: Path) -> RunResult:
    run = RunDir(path)
    return RunResult(spec, path, run.read_summary(), run.read_metrics())


def finished(path: Path) -> bool:
    return RunDir(path).summary.exists()


def percent(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def compare_val_errors(results: dict[str, RunResult], claim: str, better: str, worse: str) -> Verdict:
    """``better``'s validation error is no higher than ``worse``'s; within noise when the gap is under two
    binomial standard errors of the difference of two error rates measured on the same number of images."""
    a, b = results[better].summary.val_error, results[worse].summary.val_error
    n = results[better].summary.val_images or 0
    p = (a + b) / 2
    margin = 2 * (2 * p * (1 - p) / n) ** 0.5 if n else 0.0
    evidence = (
        f"Validation error {better} {percent(a)}% vs {worse} {percent(b)}% (two standard errors: {100 * margin:.2f})."
    )
    return Verdict(claim, a <= b, evidence, within_noise=abs(a - b) < margin)

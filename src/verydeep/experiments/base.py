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
from typing import Literal

from ..config import TrainConfig
from ..evidence import Difference, Looks, Outcome, decide, seeds_to_decide
from ..recipes import recipe_key
from ..runs import MetricsRow, RunDir, Summary
from .claims import Claim, claims_of


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
    seeds: int = 1  # each configuration is trained with seeds 0 .. seeds - 1 (``--seeds`` changes it)
    looks: Looks | None = None  # read the verdicts in looks (seeds[0] is ``seeds``); None: once, Welch's t at 95%
    readings: dict = field(default_factory=dict)  # claim key -> the quantity it is read by here, where not its own
    claims: tuple[str, ...] = ()  # the claims the preset is for: only their runs are trained; empty: every claim

    def __post_init__(self):
        if self.looks is not None and self.looks.seeds[0] != self.seeds:
            raise ValueError(f"a preset's first look is its seeds: {self.looks.seeds[0]} is not {self.seeds}")


# The VGG experiments share their presets, so that vgg_init starts from the very A that vgg_depth trained.
VGG_SMALL = {"init": "kaiming", "width": 0.25}  # He init for the layers not copied from A; a quarter of the width
# quick's and standard's recipe: a batch of 64 at the paper's lr 0.01, divided by 10 at 50% and 75% of the run.
# Calibrated on seeds 100 and 101, which no verdict uses: at lr 0.03 a seed of D and one of E (from A and from
# random alike) stayed at chance level for the whole standard run; at 0.01 every D and E trained.
VGG_CPU_RECIPE = {"batch_size": 64, "lr": 0.01, "schedule": "step", "milestones": (0.5, 0.75)}
VGG_QUICK = Preset(
    "3 seeds of 4 epochs on 6,000 training images at a quarter of Table 1's width; unlike the paper, a batch "
    "of 64 at the paper's lr 0.01, divided by 10 at 50% and 75% of the run rather than on plateaus, and He "
    "initialisation (He et al. 2015, made for training such nets from scratch) for every layer not copied "
    "from A: with N(0, 0.01^2) or Glorot initialisation no configuration leaves chance level within so few "
    "steps on [0, 1]-scaled pixels",
    epochs=4,
    subset=6_000,
    overrides=VGG_CPU_RECIPE,
    log_every=10,
    model_options=VGG_SMALL,
    seeds=3,
)

VGG_PRESETS = {
    "smoke": Preset(
        "two steps of each run on 128 images at a quarter of the width: checks the pipeline, shows nothing",
        subset=128,
        overrides={"batch_size": 32, "iterations": 2, "schedule": "step", "milestones": (0.5,)},
        log_every=1,
        model_options=VGG_SMALL,
        seeds=2,
    ),
    "quick": VGG_QUICK,
    "standard": dataclasses.replace(
        VGG_QUICK,
        description="3 seeds of 10 epochs on 12,000 training images at a quarter of Table 1's width, otherwise as "
        "quick",
        epochs=10,
        subset=12_000,
        log_every=20,
    ),
    "full": Preset(
        "the paper's recipe: batch 256, lr 0.01 divided by 10 on plateaus, 370k iterations, Table 1's width, "
        "Glorot initialisation for the layers not copied from A (the paper found it works without "
        "pre-training, Sec. 3.1)",
        model_options={"init": "glorot"},
        seeds=5,
    ),
}


# The ResNet experiments' pipeline check.
RESNET_SMOKE = Preset(
    "a few steps on 256 images: checks the pipeline, shows nothing",
    epochs=1,
    subset=256,
    overrides={"batch_size": 32},
    log_every=2,
    seeds=2,
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


Runs = dict[str, RunResult]  # one seed's runs of an experiment, by label


@dataclass(frozen=True)
class Quantity:
    """What a claim compares, measured on each trained run (given all the runs of its seed, for quantities
    relative to another run, such as the steps to reach A's error)."""

    title: str  # for the report's table, e.g. "train error %"
    measure: Callable[[RunResult, Runs], float]
    unit: Literal["error", "steps", "value"] = "error"  # error: a fraction, shown in per cent (differences in points)

    def format(self, value: float) -> str:
        if self.unit == "error":
            return f"{100 * value:.2f}"
        return f"{value:.0f}" if self.unit == "steps" else f"{value:.4f}"

    def format_difference(self, value: float) -> str:
        if self.unit == "error":
            return f"{100 * value:+.2f}"
        return f"{value:+.0f}" if self.unit == "steps" else f"{value:+.4f}"


@dataclass(frozen=True)
class Verdict:
    """A claim judged on the runs of every seed: its outcome and the numbers it was decided on."""

    claim: Claim
    a: str  # the labels compared, the claim's placeholders filled in
    b: str
    outcome: Outcome | Literal["not tested"]
    difference: Difference | None  # mean(a) - mean(b) with its interval; None when not tested
    values_a: tuple[float, ...] = ()  # one per seed
    values_b: tuple[float, ...] = ()
    quantity: Quantity | None = None
    why: str = ""  # for a claim not tested: why not
    looks: Looks | None = None  # the rule it was read by (None: once, Welch's t at 95%)

    def evidence(self) -> str:
        """The numbers, as the report gives them."""
        if self.difference is None:
            return f"Not tested: {self.why}."
        d, q, unit = self.difference, self.quantity, " points" if self.quantity.unit == "error" else ""
        side = lambda label, mean, std: f"{label} {q.format(mean)} ± {q.format(std)}"  # noqa: E731
        text = (f"{q.title}: {side(self.a, d.mean_a, d.std_a)} vs {side(self.b, d.mean_b, d.std_b)} (mean ± std "
                f"over {d.n_a} and {d.n_b} seeds); difference {q.format_difference(d.value)}{unit}")  # fmt: skip
        if d.low is None:
            return text + ", no interval: one seed a side cannot decide."
        test = {"equivalent": "TOST with Welch's t", "not higher": "one-sided Welch's t against the margin"}.get(
            self.claim.relation, "Welch's t"
        )
        if self.looks is not None:
            test = self.looks.describe() if test == "Welch's t" else f"{test}; {self.looks.describe()}"
        low, high = q.format_difference(d.low), q.format_difference(d.high)
        text += f", {100 * d.level:g}% interval [{low}, {high}] ({test}"
        if self.claim.relation == "equivalent":
            text += f"; margin ±{q.format(self.claim.margin)}{unit}"
        if self.claim.relation == "not higher":
            text += f"; margin {q.format_difference(self.claim.margin)}{unit}"
        text += ")"
        if self.outcome == "inconclusive":
            n = seeds_to_decide(d, self.claim.relation, self.claim.margin)
            if n is None:
                text += "; more seeds would not decide it at this budget"
            else:
                many = f"more than {n - 1}" if n > 1000 else f"about {n}"
                paper_side = {"lower": d.value < 0, "higher": d.value > 0, "equivalent": True,
                              "not higher": d.value < (self.claim.margin or 0.0)}[self.claim.relation]  # fmt: skip
                way = "reproduced" if paper_side else "contradicted"
                text += f"; {many} seeds a side would decide it ({way}) at this budget, if the spread stays as measured"
        return text + "."


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # the paper's figure or table
    paper: str  # what the paper reported, in a sentence or a markdown table
    recipe: str
    presets: dict[str, Preset]
    runs: Callable[[dict, Preset], list[RunSpec]]  # from the experiment's arguments (e.g. depths) and preset
    quantities: dict[str, Quantity]  # what its claims compare (the ledger, claims.py, names them)
    figures: Callable[[dict[int, Runs], Path], list[Path]]  # drawn from every seed's runs (by seed, then label)
    names: Callable[[dict], dict[str, str]] = lambda args: {}  # the claims' placeholders from the arguments
    paper_figure: Callable[[RunSpec], str] = lambda spec: ""  # the paper's number for a run, for the table
    deviations: tuple[str, ...] = ()  # how our runs differ from the paper's, stated in the report
    defaults: dict = field(default_factory=dict)  # the experiment's arguments (e.g. {"depths": (20, 56)})

    @property
    def claims(self) -> tuple[Claim, ...]:
        return claims_of(self.name)


def judge(
    claim: Claim,
    experiment: Experiment,
    names: dict[str, str],
    seeds: dict[int, Runs],
    looks: Looks | None = None,
    readings: dict | None = None,
) -> Verdict | None:
    """The claim's verdict over the seeds whose runs hold both its sides (one look of ``looks``, if given; read by
    the quantity ``readings`` names for it, if any); None when no seed's do (e.g. ``--configs A,B`` leaves out
    the claims about D)."""
    a, b = claim.labels(names)
    if claim.not_tested:
        return Verdict(claim, a, b, "not tested", None, why=claim.not_tested)
    seeds = {seed: runs for seed, runs in seeds.items() if a in runs and b in runs}
    if not seeds:
        return None
    if (readings or {}).get(claim.key):
        claim = dataclasses.replace(claim, quantity=readings[claim.key], quantity_b=None)
    qa = experiment.quantities[claim.quantity]
    qb = experiment.quantities[claim.quantity_b or claim.quantity]
    values_a = tuple(qa.measure(runs[a], runs) for runs in seeds.values())
    values_b = tuple(qb.measure(runs[b], runs) for runs in seeds.values())
    outcome, difference = decide(list(values_a), list(values_b), claim.relation, claim.margin, looks)
    return Verdict(claim, a, b, outcome, difference, values_a, values_b, qa, looks=looks)


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
    decisive = {**identity, "recipe": recipe_key(identity["recipe"]), "epochs": config.epochs,
                "iters": config.iters}  # fmt: skip
    digest = hashlib.sha1(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{identity['model']}-{digest}"


def load_result(spec: RunSpec, path: Path) -> RunResult:
    run = RunDir(path)
    return RunResult(spec, path, run.read_summary(), run.read_metrics())


def finished(path: Path) -> bool:
    return RunDir(path).summary.exists()


def final_train_error(result: RunResult, runs: Runs) -> float:
    """The last epoch's training error (on the augmented images it trained on)."""
    return result.summary.train_error


def final_val_error(result: RunResult, runs: Runs) -> float:
    if result.summary.val_error is None:
        raise ValueError(f"{result.path} held out no validation images (--val-size 0): no validation error to compare")
    return result.summary.val_error


def early_train_error(result: RunResult, runs: Runs, fraction: float = 0.1) -> float:
    """The training error over the first ``fraction`` of the run: the mean of the windows logged in it."""
    steps, errors = result.series("train_error")
    early = [e for s, e in zip(steps, errors) if s <= fraction * result.summary.steps]
    return sum(early) / len(early) if early else errors[0]


def tail_train_error(result: RunResult, runs: Runs, fraction: float = 0.1) -> float:
    """The training error over the last ``fraction`` of the run: the mean of the windows logged in it (the last
    epoch's figure swings by about 0.4 points from one epoch to the next)."""
    steps, errors = result.series("train_error")
    tail = [e for s, e in zip(steps, errors) if s > (1 - fraction) * result.summary.steps]
    return sum(tail) / len(tail) if tail else errors[-1]


def run_train_error(result: RunResult, runs: Runs) -> float:
    """The training error averaged over every window of the run: how much of it was spent at a high error."""
    _, errors = result.series("train_error")
    return sum(errors) / len(errors)


TRAIN_ERROR = Quantity("train error %", final_train_error)
VAL_ERROR = Quantity("val error %", final_val_error)
EARLY_TRAIN_ERROR = Quantity("train error % over the first tenth", early_train_error)
TAIL_TRAIN_ERROR = Quantity("train error % over the last tenth", tail_train_error)

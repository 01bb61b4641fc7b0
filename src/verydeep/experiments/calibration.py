"""Where a claim can be shown: the difference a claim compares, measured on calibration seeds (100 and up, never
used for a verdict) across training regimes and budgets, so that a preset's regime is chosen from measurements
by a rule written before any verdict seed runs, and a claim our data cannot show is said to be so from curves.

A study is data: the two runs a claim compares, the regimes (training-set size, augmentation, schedule) and the
budgets (images per run: a regime at a budget trains ``budget / subset`` epochs). Each run is an ordinary run
folder, keyed as ``reproduce``'s are, so nothing trains twice and an interrupted study continues where it stopped.
Three readings of the training error are taken from every run:

- ``last``: the last epoch's running error, on the augmented images it trained on (what the ledger compares);
- ``tail``: the mean of the running error over the last tenth of the run (less noise from one window to the next);
- ``whole``: the whole training split measured once at the end, in evaluation mode, unaugmented.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainConfig
from ..evidence import Looks, seeds_to_decide, welch
from ..runs import EvalResult, RunDir
from .base import VGG_CPU_RECIPE, VGG_SMALL, RunSpec, finished, load_result, run_key, tail_train_error
from .workers import train_all

SEEDS = (100, 101)  # calibration seeds: verdicts use 0 .. n-1 (and --seed's 1000s), never these
READINGS = {
    "last": "last epoch's running training error (augmented images)",
    "tail": "mean running training error over the last tenth of the run",
    "whole": "whole training split at the end, evaluation mode, unaugmented",
    "val": "validation error at the end (held-out images, evaluation mode)",
}
TRAINING = ("last", "tail", "whole")


@dataclass(frozen=True)
class Regime:
    """How a budget of images is spent: on how many distinct images, with what augmentation and schedule."""

    name: str  # short, for tables and folder-free reference, e.g. "8k-step"
    subset: int  # distinct training images
    overrides: dict = field(default_factory=dict)  # recipe fields beyond the study's

    def describe(self) -> str:
        parts = [f"{self.subset:,} images"]
        parts += [f"{k} {v}" for k, v in self.overrides.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class Study:
    """One claim's calibration: ``a`` against ``b`` (the paper says a is ``relation`` than b) in every regime at
    every budget, on the calibration seeds."""

    claim: str  # the ledger's key
    title: str
    a: RunSpec
    b: RunSpec
    relation: str  # "lower" or "higher": a's training error against b's, as the paper has it
    recipe: str
    overrides: dict  # recipe fields every run of the study shares
    regimes: tuple[Regime, ...]
    budgets: tuple[int, ...]  # images per run
    seeds: tuple[int, ...] = SEEDS
    log_every: int = 20
    readings: tuple[str, ...] = TRAINING  # what the claim compares, read these ways
    paper_readings: tuple[str, ...] = ("last", "tail")  # the readings of the quantity the paper compares
    experiment: str = ""  # the experiment that holds the claim
    pairs: float = 1.0  # what that experiment trains a seed, in units of this study's pair (nets of like size)

    def config(self, spec: RunSpec, regime: Regime, budget: int, seed: int, data: str, data_dir: str | None):
        return TrainConfig(
            model=spec.model,
            data=data,
            data_dir=data_dir,
            recipe=self.recipe,
            overrides={**self.overrides, **regime.overrides, **spec.overrides},
            model_options=dict(spec.options),
            epochs=budget / regime.subset,
            subset=regime.subset,
            seed=seed,
            log_every=self.log_every,
        )


@dataclass(frozen=True)
class Cell:
    """One regime at one budget on one seed: the two runs and their folders."""

    regime: Regime
    budget: int
    seed: int
    folder_a: Path
    folder_b: Path


STEP = {"schedule": "step", "milestones": (0.5, 0.75)}  # the paper's drops, compressed to the run
COSINE = {"schedule": "cosine"}  # a budget-aware decay to zero (Li et al., "Budgeted Training", ICLR 2020)
VGG_REGIMES = (
    Regime("12k-step", 12_000),  # the standard preset's: its recipe's step schedule
    Regime("48k-step", 48_000),
    Regime("12k-cosine", 12_000, COSINE),
    Regime("12k-jittered", 12_000, {"small_scale": (32, 64)}),  # Table 3's scale jittering carried to 28 px
)
CPU_BATCH = {"batch_size": 32, "lr": 0.025}  # the degradation presets' batch, lr scaled to match (Goyal et al.)

STUDIES: dict[str, Study] = {
    "resnet-reversal": Study(
        claim="resnet-fig6-resnet-deeper-better",
        title="ResNet-56 against ResNet-20: the deeper ResNet has the lower training error (Fig. 6, middle)",
        a=RunSpec("ResNet-56", "resnet56"),
        b=RunSpec("ResNet-20", "resnet20"),
        relation="lower",
        recipe="resnet_cifar",
        overrides=CPU_BATCH,
        regimes=(
            Regime("2k-step", 2_000, STEP),
            Regime("8k-step", 8_000, STEP),
            Regime("32k-step", 32_000, STEP),
            Regime("8k-cosine", 8_000, COSINE),
            Regime("8k-step-noaug", 8_000, {**STEP, "augment": False}),
        ),
        budgets=(50_000, 150_000, 450_000),
        experiment="degradation",
        pairs=2.0,  # plain-20 and plain-56 beside the two ResNets
    ),
    # VGG Table 3 at a quarter of the width, as the presets train it: D (and E) start from the A of the same
    # regime and seed (Sec. 3.1); validation error is what the claims compare.
    "vgg-d-vs-a": Study(
        claim="vgg-table3-depth-helps",
        title="VGG D against A: error falls with depth (Table 3)",
        a=RunSpec("D", "vgg_d", VGG_SMALL, init_from="A"),
        b=RunSpec("A", "vgg_a", VGG_SMALL),
        relation="lower",
        recipe="vgg",
        overrides=VGG_CPU_RECIPE,
        regimes=VGG_REGIMES,
        budgets=(120_000, 360_000),
        readings=("val", "last", "whole"),
        paper_readings=("val",),
        experiment="vgg_depth",
        pairs=5.0,  # ten nets: A, A-LRN, B, B random, B-5x5, C, D, D fixed scale, D jittered, E
    ),
}


def cells(study: Study, data: str, data_dir: str | None, root: Path, budgets=None) -> list[tuple[Cell, list]]:
    """Every cell of the study, cheapest budget first, with its planned runs (spec, config, folder)."""
    out = []
    for budget in sorted(budgets or study.budgets):
        for regime in study.regimes:
            for seed in study.seeds:
                planned = []
                for spec in sorted((study.a, study.b), key=lambda s: s.init_from is not None):
                    config = study.config(spec, regime, budget, seed, data, data_dir)
                    planned.append((spec, config, root / run_key(config)))
                planned = sorted(with_sources(planned), key=lambda p: p[0] is not study.a)
                out.append((Cell(regime, budget, seed, planned[0][2], planned[1][2]), planned))
    return out


def with_sources(planned: list) -> list:
    """A run that starts from the other's weights (VGG's D from A, Sec. 3.1) is pointed at its folder."""
    folders = {spec.label: folder for spec, _, folder in planned}
    out = []
    for spec, config, folder in planned:
        if spec.init_from is not None:
            config.init_from = str(folders[spec.init_from])
            folder = folder.parent / run_key(config)
        out.append((spec, config, folder))
    return out


def train(study: Study, root: Path, record: Record, jobs: int, data: str = "fashion-mnist",
          data_dir: str | None = None, budgets=None, log: Callable[[str], None] = print) -> None:  # fmt: skip
    """Train what is missing (neither in the record nor finished), one budget at a time, so that an interrupted
    study has its cheaper budgets whole; each budget's runs go into the record as they finish."""
    planned = cells(study, data, data_dir, root, budgets)
    for budget in sorted(budgets or study.budgets):
        todo = [run for cell, runs in planned if cell.budget == budget for run in runs if not record.has(run[2])]
        log(f"== {study.claim}: budget {budget:,} images per run ({len(todo)} runs to train)")
        train_all(todo, jobs, log)
        update(record, study, root, data, data_dir)


# Readings and the record -------------------------------------------------------------------------------------


def tail_error(folder: Path) -> float:
    """The ``tail`` reading: what the ledger's ``tail_train_error`` measures, on a run folder."""
    return tail_train_error(load_result(RunSpec("", ""), folder), {})


def whole_train_error(folder: Path) -> float:
    """The run's training split, unaugmented, in evaluation mode with the final weights; cached in the run folder
    as ``verydeep eval --split train`` would write it."""
    from ..device import pick_device
    from ..evaluate import evaluate_protocol
    from ..trained import load_eval_data, load_trained

    run = RunDir(folder)
    path = run.eval_file("train", "center")
    if path.exists():
        return EvalResult.from_dict(run.read_json(path)).error
    trained = load_trained(folder)
    data = load_eval_data(trained)
    device = pick_device("cpu")
    result = evaluate_protocol(trained.model.to(device), data, "train", "center", trained.preprocessing,
                               device=device, progress=False)  # fmt: skip
    run.write_json(path, result.to_dict())
    return result.error


def reading(name: str, folder: Path, result) -> float:
    if name == "last":
        return result.summary.train_error
    if name == "val":
        return result.summary.val_error
    return tail_error(folder) if name == "tail" else whole_train_error(folder)


def thin(values: list, most: int = 120) -> list:
    """At most ``most`` of ``values``, evenly spaced, the last always kept."""
    step = max(1, math.ceil(len(values) / most))
    kept = values[::step]
    return kept if kept[-1:] == values[-1:] else [*kept, values[-1]]


def record_of(folder: Path, study: Study, cell: Cell, spec: RunSpec) -> dict:
    """What the report needs of one finished run, kept in the study's record (committed), so that the study
    survives the loss of its run folders."""
    result = load_result(spec, folder)
    steps, errors = result.series("train_error")
    val_steps, val_errors = result.series("val_error")
    points = thin(list(zip(steps, errors)))
    return {
        "key": folder.name,
        "label": spec.label,
        "model": spec.model,
        "regime": cell.regime.name,
        "budget": cell.budget,
        "seed": cell.seed,
        "readings": {name: reading(name, folder, result) for name in study.readings},
        "val_error": result.summary.val_error,
        "seconds": result.summary.seconds,
        "cpu": RunDir(folder).read_record().environment.get("cpu"),
        "steps": result.summary.steps,
        "curve": {"step": [s for s, _ in points], "train_error": [round(e, 5) for _, e in points],
                  "val_step": val_steps, "val_error": [round(e, 5) for e in val_errors]},
    }  # fmt: skip


class Record:
    """A study's finished runs, one JSON file (docs/calibration/STUDY.json), added to as runs finish."""

    def __init__(self, path: Path):
        self.path = path
        self.runs: dict[str, dict] = {}
        if path.exists():
            self.runs = {r["key"]: r for r in json.loads(path.read_text())["runs"]}

    def has(self, folder: Path) -> bool:
        return folder.name in self.runs

    def add(self, entry: dict) -> None:
        self.runs[entry["key"]] = entry

    def save(self, study: Study) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        runs = sorted(self.runs.values(), key=lambda r: (r["budget"], r["regime"], r["seed"], r["label"]))
        self.path.write_text(json.dumps({"study": study.claim, "runs": runs}, indent=1) + "\n")


def update(record: Record, study: Study, root: Path, data: str, data_dir: str | None) -> None:
    """Add every finished run of the study that the record lacks."""
    for cell, planned in cells(study, data, data_dir, root):
        for spec, _, folder in planned:
            if not record.has(folder) and finished(folder):
                record.add(record_of(folder, study, cell, spec))
    record.save(study)


# The report ------------------------------------------------------------------------------------------------------

RULE = """\
**The rule that picks a preset's regime** (written before any verdict seed of a preset built from it has run;
the calibration seeds are never used for a verdict):

1. A cell of the study (a regime at a budget, read one way) is *eligible* for a preset when, on the calibration
   seeds, every seed's difference lies on the paper's side, and the seeds a side that Welch's interval needs to
   leave zero if the difference and its spread stay as measured (`evidence.seeds_to_decide`), times 1.5 for
   the uncertainty of a spread measured on two seeds and never fewer than 3, are no more than the decision
   procedure's most seeds (8: seeds 5, then 8 for the claims still open), and the claim's experiment, trained in
   the cell's regime on that many seeds, fits the preset's share of time. Its cost is the pair's training minutes
   that the calibration measured, times the experiment's nets in units of the pair, times 8 seeds. The shares:
   `standard`, what the experiment's standard runs take today (so that `reproduce all --preset standard` stays
   within its 3 hours); `long`, 600 core-minutes (5 hours on one core) for each of the two experiments that hold
   the headline claims, so that both fit 10 hours on 2 cores.
2. Among the eligible cells, those that read the quantity the paper compares come first (Fig. 6's training-error
   curve, which `last` and `tail` both read; Table 3's validation error); a cell read another way stands in for
   the claim only where none of those is eligible, and the report says so beside the verdict. Then the cheapest
   in images (seeds needed x images a run); a tie goes to the regime nearer the paper's (its step schedule, with
   augmentation, on more distinct images), then to the paper's own reading. (Rule 2 was amended to this with the
   VGG study's runs in hand, before any verdict seed of a preset built from it ran: it had ranked the cells by
   measured minutes, which differ between cells of equal images by the noise of a shared machine, and put a
   stand-in reading level with the paper's.)
3. Where no cell is eligible the preset keeps its regime, and the report and README say that the claim cannot
   be shown on this data within the preset's time, with these rows, and name the command that would decide it.
"""
LOOKS = Looks((5, 8))  # the decision procedure the simulation chose for the presets built from a study
SHARES = {  # core-minutes an experiment may train at a preset (rule 1)
    "standard": {"degradation": 76.4, "vgg_depth": 56.1},  # the README's measured standard training times
    "long": {"degradation": 600.0, "vgg_depth": 600.0},
}


@dataclass(frozen=True)
class Choice:
    """A cell as the rule sees it: the seeds a side it needs, what the claim's experiment would cost in it, and
    at which presets it is eligible."""

    regime: Regime
    budget: int
    reading: str
    differences: tuple[float, ...]  # per calibration seed, a - b
    needed: int | None  # seeds a side by rule 1 (None: no number would do)
    minutes: float  # the experiment at LOOKS' most seeds, in core-minutes
    fits: tuple[str, ...]  # the presets it is eligible for

    def order(self, study: Study) -> tuple:
        """Rule 2: the paper's quantity first, then the fewest images, then the paper's schedule with augmentation
        on more distinct images, then the paper's own reading."""
        overrides = self.regime.overrides
        paper_like = overrides.get("schedule", "step") == "step" and overrides.get("augment", True) is not False
        return (self.reading not in study.paper_readings, self.needed * self.budget, not paper_like,
                -self.regime.subset, self.reading != study.readings[0])  # fmt: skip


def choices(study: Study, record: Record) -> list[Choice]:
    """Every cell with two or more seeds, as rule 1 judges it."""
    regimes = {r.name: r for r in study.regimes}
    out = []
    for (regime, budget), seeds in paired(study, record).items():
        if len(seeds) < 2:
            continue
        pair = statistics.fmean(a["seconds"] + b["seconds"] for a, b in seeds.values()) / 60
        minutes = pair * study.pairs * LOOKS.seeds[-1]
        for name in study.readings:
            a = [x["readings"][name] for x, _ in seeds.values()]
            b = [y["readings"][name] for _, y in seeds.values()]
            differences = tuple(x - y for x, y in zip(a, b))
            paper_side = all((d < 0) if study.relation == "lower" else (d > 0) for d in differences)
            n = seeds_to_decide(welch(a, b), study.relation) if paper_side else None
            needed = None if n is None else max(3, math.ceil(1.5 * n))
            fits = tuple(preset for preset, share in SHARES.items() if needed is not None
                         and needed <= LOOKS.seeds[-1] and minutes <= share.get(study.experiment, 0.0))  # fmt: skip
            out.append(Choice(regimes[regime], budget, name, differences, needed, minutes, fits))
    return out


def pick(study: Study, record: Record, preset: str) -> Choice | None:
    """Rule 2: the cheapest eligible cell for ``preset`` (None: rule 3, the preset keeps its regime)."""
    eligible = [c for c in choices(study, record) if preset in c.fits]
    return min(eligible, key=lambda c: c.order(study), default=None)


DOCS = Path(__file__).resolve().parents[3] / "docs" / "calibration"  # the committed records
RESULTS = DOCS.parents[1] / "results"  # the committed reproductions, results/PRESET (README: results/)


def studied(claim: str) -> bool:
    return any(study.claim == claim for study in STUDIES.values())


def finding(claim: str, docs: Path = DOCS) -> str:
    """What the calibration found of a claim, in a clause for the reports: the regimes the rule picked, or that
    none decides it on this data within the longest preset, or that no study measured it."""
    name, study = next(((n, s) for n, s in STUDIES.items() if s.claim == claim), (None, None))
    if study is None:
        return "not calibrated: no study has measured it beyond the presets, and no budget is extrapolated from them"
    record = Record(docs / f"{name}.json")
    if not record.runs:
        return f"its calibration (`verydeep calibrate {name}`) has not run here"
    budgets = sorted({entry["budget"] for entry in record.runs.values()})
    picked = [f"`{preset}` in {c.regime.name} ({c.regime.describe()}) at {c.budget:,} images a run, read as "
              f"`{c.reading}`" for preset in SHARES if (c := pick(study, record, preset))]  # fmt: skip
    sides, every = [], choices(study, record)
    for budget in budgets:
        found = [c for c in every if c.budget == budget]
        right = sum((d < 0) if study.relation == "lower" else (d > 0) for c in found for d in c.differences)
        sides.append(f"{right} of {sum(len(c.differences) for c in found)} at {budget:,} images a run")
    measured = (f"the calibration (docs/calibration.md: {len(study.regimes)} regimes; seed-readings on the paper's "
                f"side: {', '.join(sides)})")  # fmt: skip
    if picked:
        return f"{measured} picked {'; '.join(picked)}"
    return (f"{measured} found no regime that decides it within 10 hours on this data: CIFAR-10 (`--data cifar10`) "
            "or `full` on a GPU would")  # fmt: skip


def rule_section(study: Study, record: Record) -> list[str]:
    """What rule 1 finds in each cell and what rule 2 picks for each preset."""
    lines = ["What the rule finds (seeds a side by rule 1; cost of the claim's experiment "
             f"`{study.experiment}` in the cell at {LOOKS.seeds[-1]} seeds):", "",
             "| regime | budget | reading | on the paper's side | seeds needed | cost (core-minutes) | eligible for |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in choices(study, record):
        side = (
            "every seed"
            if c.needed is not None or all((d < 0) if study.relation == "lower" else (d > 0) for d in c.differences)
            else "not every seed"
        )
        lines.append(f"| {c.regime.name} | {c.budget:,} | {c.reading} | {side} | {c.needed or '-'} | "
                     f"{c.minutes:.0f} | {', '.join(c.fits) or '-'} |")  # fmt: skip
    lines.append("")
    for preset, share in SHARES.items():
        chosen = pick(study, record, preset)
        what = (f"**{chosen.regime.name}** ({chosen.regime.describe()}) at {chosen.budget:,} images per run, read "
                f"as `{chosen.reading}`" + ("" if chosen.reading in study.paper_readings else
                " (a stand-in: no cell read the paper's way is eligible)") + f"; {LOOKS.describe()}" if chosen else
                "no cell: it keeps its regime (rule 3)")  # fmt: skip
        lines.append(f"- `{preset}` (share {share.get(study.experiment, 0):.0f} core-minutes): {what}.")
    return lines + [""]


def verdict_section(study: Study, record: Record, results: Path = RESULTS) -> list[str]:
    """What the verdict seeds gave at each preset the rule picked a cell for, from the committed reproduction
    (results/PRESET/EXPERIMENT-PRESET/summary.json), beside what the calibration seeds had measured in that cell;
    for a claim left open, what would decide it, at the cost its own runs took."""
    lines = []
    for preset in SHARES:
        chosen = pick(study, record, preset)
        if chosen is None:
            continue
        folder = results / preset / f"{study.experiment}-{preset}"
        path = folder / "summary.json"
        if not path.exists():
            lines.append(f"- `{preset}`: its verdict seeds have not run (`verydeep reproduce {study.experiment} "
                         f"--preset {preset} --out results/{preset}`).")  # fmt: skip
            continue
        summary = json.loads(path.read_text())
        v = next(v for v in summary["verdicts"] if v["key"] == study.claim)
        seeds = sorted(run["seed"] for run in summary["runs"].get(v["a"], []))
        show = lambda x: f"{100 * x:+.2f}"  # noqa: E731
        calibrated = ", ".join(show(d) for d in chosen.differences)
        text = (f"- `{preset}`, verdict seeds {seeds[0]}-{seeds[-1]} (results/{preset}/{folder.name}/report.md): "
                f"{v['a']} {100 * v['mean_a']:.2f} ± {100 * v['std_a']:.2f} against {v['b']} {100 * v['mean_b']:.2f} "
                f"± {100 * v['std_b']:.2f}, difference {show(v['difference'])} points, {100 * v['level']:g}% interval "
                f"[{show(v['interval'][0])}, {show(v['interval'][1])}]: **{v['outcome']}**. The calibration seeds had "
                f"measured {calibrated} points in this cell (rule 1 asked for {chosen.needed} seeds a side)."
                )  # fmt: skip
        if v["outcome"] == "inconclusive":
            text += " " + still_open(study, summary, v, results.parent)
        lines.append(text)
    return ["What the verdict seeds gave at the presets built from this study:", "", *lines, ""] if lines else []


def still_open(study: Study, summary: dict, v: dict, root: Path) -> str:
    """For a claim a preset left open: the seeds a side that would decide it at the verdict seeds' difference and
    spread, what they would cost at the minutes its runs took, and the command that decides it on the paper's data."""
    n = seeds_to_decide(welch(v["values_a"], v["values_b"]), study.relation)
    seconds: dict[str, dict[str, list[float]]] = {}  # CPU -> label -> each run's training seconds
    for label in (v["a"], v["b"]):
        for run in summary["runs"].get(label, []):
            folder = root / run["folder"]
            cpu = RunDir(folder).read_record().environment.get("cpu") if (folder / "config.json").exists() else None
            seconds.setdefault(str(cpu or "CPU not recorded"), {}).setdefault(label, []).append(run["seconds"])
    pairs = {cpu: sum(statistics.fmean(s) for s in by_label.values()) / 3600 for cpu, by_label in seconds.items()
             if len(by_label) == 2}  # fmt: skip
    if n is None:
        cost = "no number of seeds would decide it at this difference"
    else:
        each = "; ".join(f"{n * pair:.0f} core-hours ({n * pair / 2:.1f} hours on 2 cores) at the {60 * pair:.0f} "
                         f"core-minutes a pair of its runs took on {cpu}" for cpu, pair in pairs.items())  # fmt: skip
        cost = (f"about {n} seeds a side would decide it if the difference and the spreads stayed as measured: "
                f"{each or 'at a cost not recorded'}; as a preset of its own, on fresh seeds, with its rule written "
                "before they run (adding seeds to these would read them twice)")  # fmt: skip
    return (
        f"The claim stays open at this budget on Fashion-MNIST: {cost}. On the paper's data, `verydeep reproduce "
        f"{study.experiment} --preset full --data cifar10` on a GPU would decide it."
    )


def paired(study: Study, record: Record):
    """(regime, budget) -> {seed: (a's entry, b's entry)} for the seeds whose two runs are recorded."""
    by_cell: dict[tuple[str, int], dict[int, dict[str, dict]]] = {}
    for entry in record.runs.values():
        by_cell.setdefault((entry["regime"], entry["budget"]), {}).setdefault(entry["seed"], {})[entry["label"]] = entry
    out = {}
    for key, seeds in by_cell.items():
        both = {s: (e[study.a.label], e[study.b.label]) for s, e in sorted(seeds.items()) if len(e) == 2}
        if both:
            out[key] = both
    return out


def table(study: Study, record: Record) -> list[str]:
    regimes = {r.name: r for r in study.regimes}
    lines = [
        f"| regime | budget (images per run) | reading | seeds | {study.a.label} % | {study.b.label} % | "
        "difference, per seed (points) | mean difference, 95% interval | minutes a pair (training) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cells_ = paired(study, record)
    order = [(r.name, b) for b in sorted(study.budgets) for r in study.regimes]
    for regime, budget in [key for key in order if key in cells_]:
        seeds = cells_[(regime, budget)]
        minutes = statistics.fmean(a["seconds"] + b["seconds"] for a, b in seeds.values()) / 60
        for name in study.readings:
            a = [pair[0]["readings"][name] for pair in seeds.values()]
            b = [pair[1]["readings"][name] for pair in seeds.values()]
            d = welch(a, b)
            per_seed = ", ".join(f"{100 * (x - y):+.2f}" for x, y in zip(a, b))
            interval = f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]" if d.low is not None else "one seed"
            mean = lambda v: f"{100 * statistics.fmean(v):.2f}"  # noqa: E731
            lines.append(f"| {regime} ({regimes[regime].describe()}) | {budget:,} | {name} | "
                         f"{', '.join(map(str, seeds))} | {mean(a)} | {mean(b)} | {per_seed} | "
                         f"{100 * d.value:+.2f} {interval} | {minutes:.1f} |")  # fmt: skip
    return lines


def curves_figure(study: Study, record: Record, path: Path) -> Path | None:
    """Per regime, at its largest budget recorded: each net's training error (thin) and validation error (bold)
    as the mean over the calibration seeds, in a band that holds every seed."""
    from matplotlib.figure import Figure

    cells_ = paired(study, record)
    regimes = [r.name for r in study.regimes if any(key[0] == r.name for key in cells_)]
    if not regimes:
        return None
    fig = Figure(figsize=(4.2 * len(regimes), 3.8))
    axes = fig.subplots(1, len(regimes), sharey=True, squeeze=False)[0]
    for ax, regime in zip(axes, regimes):
        budget = max(b for r, b in cells_ if r == regime)
        seeds = cells_[(regime, budget)]
        for side, colour in ((0, "tab:red"), (1, "tab:blue")):
            runs = [pair[side] for pair in seeds.values()]
            for key, steps_key, width in (("train_error", "step", 0.9), ("val_error", "val_step", 2.2)):
                length = min(len(r["curve"][key]) for r in runs)
                steps = runs[0]["curve"][steps_key][:length]
                values = [[100 * r["curve"][key][i] for r in runs] for i in range(length)]
                mean = [statistics.fmean(v) for v in values]
                label = runs[0]["label"] if key == "val_error" else None
                ax.plot(steps, mean, color=colour, linewidth=width, label=label)
                ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], color=colour, alpha=0.15)
        ax.set_title(f"{regime}, {budget:,} images", fontsize=9)
        ax.set_xlabel("iterations")
        ax.set_ylim(0, 40)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error % (thin: training, bold: validation)")
    fig.suptitle(f"{study.title}: mean over seeds {', '.join(map(str, study.seeds))}, band: every seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def difference_figure(study: Study, record: Record, path: Path) -> Path | None:
    """Each regime's difference (a - b, points) against the budget, one panel per reading, every seed a dot."""
    from matplotlib.figure import Figure

    cells_ = paired(study, record)
    if not cells_:
        return None
    fig = Figure(figsize=(4.2 * len(study.readings), 3.6))
    axes = fig.subplots(1, len(study.readings), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, study.readings):
        for colour, regime in zip(("tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple"), study.regimes):
            budgets = sorted(b for r, b in cells_ if r == regime.name)
            if not budgets:
                continue
            diffs = [[100 * (a["readings"][name] - b["readings"][name]) for a, b in cells_[(regime.name, bud)].values()]
                     for bud in budgets]  # fmt: skip
            ax.plot(budgets, [statistics.fmean(d) for d in diffs], color=colour, marker="o", label=regime.name)
            for bud, d in zip(budgets, diffs):
                ax.scatter([bud] * len(d), d, color=colour, s=10, alpha=0.6)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(READINGS[name], fontsize=8)
        ax.set_xlabel("images per run")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{study.a.label} - {study.b.label}, points")
    axes[0].legend(fontsize=7)
    way = "below zero" if study.relation == "lower" else "above zero"
    fig.suptitle(f"{study.claim}: the paper's direction is {way}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def procedure_section(reps: int) -> list[str]:
    from .. import procedures

    results = procedures.simulate(reps)
    chosen = procedures.choose(results, reps)
    return ["## The decision procedure, chosen by simulation", "",
            f"Each procedure decided {reps:,} planted outcomes of each scenario (`python -m verydeep.procedures "
            f"--reps {reps}`); a false verdict is any verdict under a null, or one against the planted effect; "
            "power is the share decided the planted way; seeds are the mean seeds a side used.", "",
            *procedures.table(results), "", "Scenarios (training errors as our runs measured them):", "",
            *[f"- {s.name}: {s.source}" for s in procedures.SCENARIOS], "", procedures.RULE, "",
            f"The rule picks: **{chosen.name if chosen else 'none'}**.", ""]  # fmt: skip


def write_report(studies, root: Path, out: Path, data: str = "fashion-mnist", data_dir: str | None = None,
                 reps: int = 100_000) -> Path:  # fmt: skip
    """docs/calibration.md: the rules, the decision procedures' simulation, then per study its command, table and
    figures, from the studies' records (brought up to date from the run folders under ``root`` first)."""
    figures = out.parent / "calibration"
    lines = ["# Calibration: where each claim can be shown", "",
             "Every run below trained on calibration seeds (100 and up), which no verdict uses. Regenerate this page "
             "with `verydeep calibrate all --report-only`; train what is missing with `verydeep calibrate all`.", "",
             RULE, *procedure_section(reps)]  # fmt: skip
    for name, study in studies.items():
        record = Record(figures / f"{name}.json")
        update(record, study, root, data, data_dir)
        lines += [f"## {study.title}", "",
                  f"Claim `{study.claim}`; the paper: {study.a.label} {study.relation} than {study.b.label}. "
                  f"Command: `verydeep calibrate {name} --jobs 2`. Every run: batch "
                  f"{study.overrides.get('batch_size')}, lr {study.overrides.get('lr')}, the {study.recipe} recipe "
                  f"otherwise; one process of one thread each. Readings: "
                  + "; ".join(f"`{k}` the {READINGS[k]}" for k in study.readings) + ".", "",
                  ]  # fmt: skip
        if not paired(study, record):
            lines += ["No pair of this study's runs has finished yet.", ""]
            continue
        lines += [*table(study, record), "", *rule_section(study, record),
                  f"CPU: {', '.join(sorted({str(r.get('cpu')) for r in record.runs.values()}))}; two runs at a "
                  "time on its two cores, beside other work, so the minutes are an upper bound.", "",
                  *verdict_section(study, record)]  # fmt: skip
        for draw, stem in ((curves_figure, "curves"), (difference_figure, "differences")):
            path = draw(study, record, figures / f"{name}-{stem}.png")
            if path is not None:
                lines += [f"![{name} {stem}](calibration/{path.name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out

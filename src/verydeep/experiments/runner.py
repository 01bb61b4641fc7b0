"""Run an experiment: train what is missing (resuming what was interrupted) for every seed, then measure, plot,
judge each claim over the seeds, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..evidence import Looks
from .base import Experiment, Preset, Runs, RunSpec, Verdict, judge, load_result, run_config, run_key
from .cluster import Slurm, train_on_slurm
from .report import Reproduction, write_experiment, write_index
from .workers import default_jobs, train_all


def plan(
    experiment: Experiment,
    preset: str,
    data: str,
    data_dir: str | None,
    runs_root: Path,
    seeds: Sequence[int],
    args: dict,
):
    """Each run's (spec, config, folder) for every seed; a run that starts from another (of its seed) after it."""
    if preset not in experiment.presets:
        raise ValueError(f"{experiment.name} has no preset {preset!r}; valid: {', '.join(experiment.presets)}")
    chosen = experiment.presets[preset]
    specs = for_claims(experiment, chosen, args, experiment.runs({**experiment.defaults, **args, "data": data}, chosen))
    planned = []
    for seed in seeds:
        folders: dict[str, Path] = {}
        for spec in sorted(specs, key=lambda s: s.init_from is not None):
            config = run_config(experiment, chosen, spec, data, data_dir, seed)
            if spec.init_from is not None:
                config.init_from = str(folders[spec.init_from])
            folder = runs_root / run_key(config)
            folders[spec.label] = folder
            planned.append((spec, config, folder))
    return planned


def for_claims(experiment: Experiment, preset: Preset, args: dict, specs: list[RunSpec]) -> list[RunSpec]:
    """The runs that the preset's claims compare, and those they start from; every run where it names none."""
    if not preset.claims:
        return specs
    names = experiment.names({**experiment.defaults, **args})
    wanted = {label for claim in experiment.claims if claim.key in preset.claims for label in claim.labels(names)}
    by_label = {spec.label: spec for spec in specs}
    while starts := {by_label[label].init_from for label in wanted if by_label[label].init_from} - wanted:
        wanted |= starts
    return [spec for spec in specs if spec.label in wanted]


def reproduce(
    experiment: Experiment,
    preset: str = "quick",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    out: str | Path | None = None,
    runs_root: str | Path | None = None,
    jobs: int | None = None,
    seeds: int | None = None,
    first_seed: int = 0,
    args: dict | None = None,
    log: Callable[[str], None] = print,
    slurm: Slurm | None = None,
) -> Reproduction:
    """Train (or reuse) the experiment's runs for ``seeds`` seeds (default: the preset's) from ``first_seed`` on,
    then write report.md, results.csv, summary.json and figures into ``out``; with ``slurm``, the runs train as
    tasks of Slurm job arrays (cluster.py) rather than in processes of this machine."""
    t0 = time.perf_counter()
    out = Path(out or Path("reproductions") / f"{experiment.name}-{preset}")
    runs_root = Path(runs_root or out.parent / "runs")
    args = arguments(experiment, args or {})
    looks, readings = None, {}
    if preset in experiment.presets:
        readings = experiment.presets[preset].readings
        if seeds is None:
            seeds, looks = experiment.presets[preset].seeds, experiment.presets[preset].looks
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds {seeds}: give at least 1 (2 or more to decide a claim)")
    chosen = tuple(range(first_seed, first_seed + (seeds or 1)))
    jobs = default_jobs() if jobs is None else jobs

    def train(planned) -> None:
        if slurm is None:
            train_all(planned, jobs, log)
        else:
            train_on_slurm(planned, slurm, runs_root, log)

    planned = plan(experiment, preset, data, data_dir, runs_root, chosen, args)
    train(planned)
    runs: dict[int, Runs] = {seed: {} for seed in chosen}
    for spec, config, folder in planned:
        runs[config.seed][spec.label] = load_result(spec, folder)
    names = experiment.names(args)
    verdicts = [v for claim in experiment.claims
                if (v := judge(claim, experiment, names, runs, looks, readings)) is not None]  # fmt: skip
    for count in looks.seeds[1:] if looks else ():
        verdicts = look_again(experiment, preset, data, data_dir, runs_root, args, runs, verdicts, first_seed + count,
                              looks, train, log)  # fmt: skip
    values = measure(experiment, runs)
    out.mkdir(parents=True, exist_ok=True)
    figures = experiment.figures({seed: runs[seed] for seed in chosen}, out)
    result = Reproduction(experiment, preset, data, chosen, args, runs, values, verdicts, figures,
                          time.perf_counter() - t0)  # fmt: skip
    write_experiment(out, result)
    return result


def look_again(experiment: Experiment, preset: str, data: str, data_dir: str | None, runs_root: Path, args: dict,
               runs: dict[int, Runs], verdicts: list[Verdict], end: int, looks: Looks, train: Callable,
               log: Callable[[str], None]) -> list[Verdict]:  # fmt: skip
    """The next look of a sequential rule: the runs that the claims still open compare (and those they start
    from) are trained on the seeds up to ``end``, added to ``runs``, and those claims judged again on every seed
    they have; a claim decided at an earlier look keeps that verdict."""
    still = [v for v in verdicts if v.outcome == "inconclusive"]
    if not still:
        return verdicts
    labels = {label for v in still for label in (v.a, v.b)}
    new = tuple(range(max(runs) + 1, end))
    planned = plan(experiment, preset, data, data_dir, runs_root, new, args)
    while True:  # the runs they start from, too
        starts = {spec.init_from for spec, _, _ in planned if spec.label in labels and spec.init_from}
        if starts <= labels:
            break
        labels |= starts
    planned = [(spec, config, folder) for spec, config, folder in planned if spec.label in labels]
    which = f"seeds {new[0]}-{new[-1]}" if len(new) > 1 else f"seed {new[0]}"
    log(f"{len(still)} claim(s) still open after {len(runs)} seeds: training {', '.join(sorted(labels))} on {which}")
    train(planned)
    for spec, config, folder in planned:
        runs.setdefault(config.seed, {})[spec.label] = load_result(spec, folder)
    names = experiment.names(args)
    readings = experiment.presets[preset].readings
    again = {v.claim.key: judge(v.claim, experiment, names, runs, looks, readings) for v in still}
    return [again.get(v.claim.key, v) or v for v in verdicts]


def measure(experiment: Experiment, runs: dict[int, Runs]) -> dict[str, dict[str, tuple[float, ...]]]:
    """Every quantity of the experiment on every label, one value per seed (where it can be measured)."""
    labels = list(next(iter(runs.values())))
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for name, quantity in experiment.quantities.items():
        values[name] = {}
        for label in labels:
            try:  # a later look of a sequential rule trains only some labels on its seeds
                values[name][label] = tuple(quantity.measure(by[label], by) for by in runs.values() if label in by)
            except (ValueError, KeyError):  # e.g. no validation error after --val-size 0: the table leaves it out
                continue
    return values


def arguments(experiment: Experiment, given: dict) -> dict:
    """The experiment's arguments: its defaults, with those ``given`` (which it must take) in their place."""
    unknown = sorted(set(given) - set(experiment.defaults))
    if unknown:
        raise ValueError(
            f"{experiment.name} takes no {', '.join('--' + k for k in unknown)}"
            + (f"; its arguments: {', '.join('--' + k for k in experiment.defaults)}" if experiment.defaults else "")
        )
    return {**experiment.defaults, **given}


def reproduce_all(
    experiments: Sequence[Experiment],
    preset: str = "quick",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    root: str | Path = "reproductions",
    jobs: int | None = None,
    seeds: int | None = None,
    first_seed: int = 0,
    log: Callable[[str], None] = print,
    slurm: Slurm | None = None,
) -> tuple[list[Reproduction], Path]:
    """Every experiment with ``preset`` (their runs shared in ``root``/runs: layer_responses and protocols train
    nothing that degradation has not), then ``root``/index.md and index.json, a row per claim."""
    root = Path(root)
    missing = [e.name for e in experiments if preset not in e.presets]
    if len(missing) == len(experiments):
        raise ValueError(f"no experiment has a preset {preset!r}")
    if missing:  # e.g. long, which only the experiments of the claims that standard cannot decide have
        log(f"{', '.join(missing)}: no preset {preset!r}, left out")
        experiments = [e for e in experiments if preset in e.presets]
    done = []
    for experiment in experiments:
        log(f"== {experiment.name} ({experiment.source})")
        done.append(reproduce(experiment, preset, data, data_dir, root / f"{experiment.name}-{preset}",
                              root / "runs", jobs, seeds, first_seed, log=log, slurm=slurm))  # fmt: skip
    index, _ = write_index(root, done, preset)
    return done, index

"""Run an experiment: train what is missing (resuming what was interrupted), then measure, plot, judge, report."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..runs import RunDir, atomic_write_bytes
from .base import Experiment, RunResult, load_result, run_config, run_key
from .workers import default_jobs, train_all


def plan(experiment: Experiment, preset: str, data: str, data_dir: str | None, runs_root: Path, seed: int, args: dict):
    """Each run's (spec, config, folder), runs that start from another run after it."""
    if preset not in experiment.presets:
        raise ValueError(f"{experiment.name} has no preset {preset!r}; valid: {', '.join(experiment.presets)}")
    chosen = experiment.presets[preset]
    specs = experiment.runs({**experiment.defaults, **args}, chosen)
    folders: dict[str, Path] = {}
    planned = []
    for spec in sorted(specs, key=lambda s: s.init_from is not None):
        config = run_config(experiment, chosen, spec, data, data_dir, seed)
        if spec.init_from is not None:
            config.init_from = str(folders[spec.init_from])
        folder = runs_root / run_key(config)
        folders[spec.label] = folder
        planned.append((spec, config, folder))
    return planned


def reproduce(
    experiment: Experiment,
    preset: str = "quick",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    out: str | Path | None = None,
    runs_root: str | Path | None = None,
    jobs: int | None = None,
    seed: int = 0,
    args: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or reuse) the experiment's runs and write report.md, results.csv, summary.json and figures."""
    t0 = time.perf_counter()
    out = Path(out or Path("reproductions") / f"{experiment.name}-{preset}")
    runs_root = Path(runs_root or out.parent / "runs")
    args = arguments(experiment, args or {})
    planned = plan(experiment, preset, data, data_dir, runs_root, seed, args)
    train_all(planned, default_jobs() if jobs is None else jobs, log)
    results = {spec.label: load_result(spec, folder) for spec, _, folder in planned}
    out.mkdir(parents=True, exist_ok=True)
    analysis = experiment.analyse(results) if experiment.analyse else {}
    figures = experiment.figures(results, analysis, out)
    verdicts = experiment.verdicts(results, analysis)
    header, rows = experiment.table(results, analysis)
    write_csv(out / "results.csv", header, rows)
    summary = {
        "experiment": experiment.name,
        "preset": preset,
        "data": data,
        "seed": seed,
        "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()},
        "runs": {label: run_entry(r) for label, r in results.items()},
        "verdicts": [
            {"claim": v.claim, "reproduced": v.reproduced, "evidence": v.evidence, "within_noise": v.within_noise}
            for v in verdicts
        ],  # fmt: skip
        "reproduced": all(v.reproduced for v in verdicts),
        "figures": [str(f.name) for f in figures],
        "seconds": time.perf_counter() - t0,
        **({"analysis": analysis} if analysis else {}),
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    write_report(out / "report.md", experiment, preset, data, seed, args, results, header, rows, figures, verdicts)
    return summary


def arguments(experiment: Experiment, given: dict) -> dict:
    """The experiment's arguments: its defaults, with those ``given`` (which it must take) in their place."""
    unknown = sorted(set(given) - set(experiment.defaults))
    if unknown:
        raise ValueError(
            f"{experiment.name} takes no {', '.join('--' + k for k in unknown)}"
            + (f"; its arguments: {', '.join('--' + k for k in experiment.defaults)}" if experiment.defaults else "")
        )
    return {**experiment.defaults, **given}


def run_entry(r: RunResult) -> dict:
    s = r.summary
    return {"model": r.spec.model, "folder": str(r.path), "train_error": s.train_error, "val_error": s.val_error,
            "steps": s.steps, "seconds": s.seconds}  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reproduce_command(experiment: Experiment, preset: str, data: str, seed: int, args: dict) -> list[str]:
    """The shortest command that reproduces this report: only what differs from the defaults."""
    words = ["verydeep", "reproduce", experiment.name, "--preset", preset]
    if data != "fashion-mnist":
        words += ["--data", data]
    if seed != 0:
        words += ["--seed", str(seed)]
    for key, value in args.items():
        if value != experiment.defaults.get(key):
            words += [f"--{key}", ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return words


def write_report(path, experiment, preset, data, seed, args, results, header, rows, figures, verdicts) -> None:
    chosen = experiment.presets[preset]
    first = next(iter(results.values()))
    record = RunDir(first.path).read_record()
    command = " ".join(reproduce_command(experiment, preset, data, seed, args))
    recipe, sizes = record.recipe, record.data.sizes
    lines = [
        f"# {experiment.title}",
        "",
        f"**The paper** ({experiment.source}): {experiment.paper}",
        "",
        f"**Ours**: `{command}`",
        "",
        f"- preset `{preset}`: {chosen.description}",
        f"- data: {data} ({sizes['train']:,} training / {sizes['val']:,} "
        f"held-out validation images), recipe `{recipe.name}` ({recipe.section}), seed {seed}",
        f"- on {record.run.device} with {record.run.precision}, torch {record.environment['torch']}",
    ]
    lines += [f"- deviation from the paper: {d}" for d in experiment.deviations]
    if chosen.overrides:
        changed = ", ".join(f"{k}={v}" for k, v in chosen.overrides.items())
        lines.append(f"- recipe fields changed by this preset: {changed}")
    lines += ["", "## Verdicts", ""]
    for v in verdicts:
        mark = "reproduced" if v.reproduced else "NOT reproduced"
        noise = " (within noise: one seed cannot separate these)" if v.within_noise else ""
        lines.append(f"- **{mark}**: {v.claim}. {v.evidence}{noise}")
    lines += ["", "## Results", "", markdown_table(header, rows), ""]
    for figure in figures:
        lines += [f"![{figure.stem}]({figure.name})", ""]
    lines += ["## Runs", ""]
    for label, r in results.items():
        where = os.path.relpath(r.path, path.parent)
        lines.append(f"- {label}: `{where}` ({r.summary.steps} steps, {r.summary.seconds:.0f} s of training)")
    path.write_text("\n".join(lines) + "\n")

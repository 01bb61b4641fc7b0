"""Run an experiment: train what is missing (resuming what was interrupted), then measure, plot, judge, report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..device import physical_cores
from ..registry import get_entry
from ..runs import RunDir, atomic_write_bytes
from ..train import Interrupted, fit
from .base import Experiment, finished, load_result, run_config, run_key


class ExperimentInterrupted(Exception):
    """A run stopped on a signal; its checkpoint is saved and the same command continues it."""


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


def train_all(planned, jobs: int, log: Callable[[str], None]) -> None:
    """Train the runs that are not finished; ``jobs`` > 1 trains independent runs in parallel processes."""
    todo = [(s, c, f) for s, c, f in planned if not finished(f)]
    for spec, _, folder in planned:
        if finished(folder):
            log(f"{spec.label}: already trained in {folder}")
    if jobs <= 1:
        for spec, config, folder in todo:
            resume = RunDir(folder).checkpoint.exists()
            log(f"{spec.label}: {'resuming' if resume else 'training'} {config.model} in {folder}")
            try:
                fit(config, folder, resume=resume)
            except Interrupted as e:
                raise ExperimentInterrupted(f"{spec.label}: {e.reason}") from None
        return
    threads = max(1, physical_cores() // jobs)
    independent = [t for t in todo if t[1].init_from is None]
    dependent = [t for t in todo if t[1].init_from is not None]
    for wave in (independent, dependent):
        # the costliest first, so that the last runs to finish are short ones
        _train_parallel(sorted(wave, key=lambda t: -cost(t[1].model)), jobs, threads, log)


def cost(model: str) -> int:
    """A rough ordering of training cost: the number of weight layers."""
    return get_entry(model).depth


def default_jobs(device: str = "auto") -> int:
    """On a CPU, one single-threaded process per core trains more images a second in total than one process
    with a thread per core (the small convolutions of these nets do not keep many threads busy); on a GPU one."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return 1
    return physical_cores()


def _train_parallel(todo, jobs: int, threads: int, log: Callable[[str], None]) -> None:
    waiting, running = list(todo), []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    last_status = time.perf_counter()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                spec, config, folder = waiting.pop(0)
                folder.mkdir(parents=True, exist_ok=True)
                config_file = folder / "request.json"
                config_file.write_text(json.dumps(config.to_dict()))
                command = [
                    sys.executable,
                    "-m",
                    "verydeep",
                    "train",
                    "--config",
                    str(config_file),
                    "--out",
                    str(folder),
                ]
                if RunDir(folder).checkpoint.exists():
                    command.append("--resume")
                log(f"{spec.label}: training {config.model} in {folder} (log: {folder / 'train.log'})")
                with open(folder / "train.log", "a") as out:
                    running.append((spec, folder, subprocess.Popen(command, stdout=out, stderr=out, env=env)))
            time.sleep(1)
            for item in list(running):
                spec, folder, proc = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                if proc.returncode == 130:
                    raise ExperimentInterrupted(f"{spec.label} was interrupted; its checkpoint is saved")
                if proc.returncode != 0:
                    tail = (folder / "train.log").read_text().strip().splitlines()[-3:]
                    raise RuntimeError(f"{spec.label} failed (exit {proc.returncode}): {' / '.join(tail)}")
                log(f"{spec.label}: done")
            if running and time.perf_counter() - last_status > 30:
                log("; ".join(f"{spec.label} {progress(folder)}" for spec, folder, _ in running))
                last_status = time.perf_counter()
    except KeyboardInterrupt:
        raise ExperimentInterrupted("interrupted; every run's checkpoint is saved") from None
    finally:
        # a run that failed, an error here or a signal: the others save a checkpoint and stop, none is orphaned
        for _, _, proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _, _, proc in running:
            proc.wait()


def progress(folder: Path) -> str:
    """'step 120/430' from a run's log, for the parent's status line."""
    try:
        lines = (folder / "train.log").read_text().strip().splitlines()
    except OSError:
        return "starting"
    for line in reversed(lines):
        if line.startswith("step "):
            return line.split(" epoch")[0]
    return "starting"


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
    given = args or {}
    unknown = sorted(set(given) - set(experiment.defaults))
    if unknown:
        raise ValueError(
            f"{experiment.name} takes no {', '.join('--' + k for k in unknown)}"
            + (f"; its arguments: {', '.join('--' + k for k in experiment.defaults)}" if experiment.defaults else "")
        )
    args = {**experiment.defaults, **given}
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
        "runs": {
            label: {
                "model": r.spec.model,
                "folder": str(r.path),
                "train_error": r.summary.get("train_error"),
                "val_error": r.summary.get("val_error"),
                "steps": r.summary.get("steps"),
                "seconds": r.summary.get("seconds"),
            }
            for label, r in results.items()
        },
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
    config = RunDir(first.path).read_config()
    command = " ".join(reproduce_command(experiment, preset, data, seed, args))
    recipe = config["recipe"]
    lines = [
        f"# {experiment.title}",
        "",
        f"**The paper** ({experiment.source}): {experiment.paper}",
        "",
        f"**Ours**: `{command}`",
        "",
        f"- preset `{preset}`: {chosen.description}",
        f"- data: {data} ({config['data']['sizes']['train']:,} training / {config['data']['sizes']['val']:,} "
        f"held-out validation images), recipe `{recipe['name']}` ({recipe['section']}), seed {seed}",
        f"- on {config['run']['device']} with {config['run']['precision']}, torch {config['environment']['torch']}",
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
        lines.append(f"- {label}: `{where}` ({r.summary['steps']} steps, {r.summary['seconds']:.0f} s of training)")
    path.write_text("\n".join(lines) + "\n")

"""What a reproduction writes: an experiment's report.md, results.csv and summary.json, and the index of every
claim over all experiments (reproductions/index.md and index.json)."""

from __future__ import annotations

import csv
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..runs import RunDir, atomic_write_bytes
from . import calibration
from .base import Experiment, Runs, Verdict
from .claims import CLAIMS

MARKS = {"reproduced": "reproduced", "contradicted": "CONTRADICTED", "inconclusive": "inconclusive",
         "not tested": "not tested"}  # fmt: skip


TESTS = {"equivalent": "TOST, Welch's t", "not higher": "one-sided Welch's t against the margin"}


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` asked for and found: every seed's runs, the values measured on them, the verdicts."""

    experiment: Experiment
    preset: str
    data: str
    seeds: tuple[int, ...]
    args: dict
    runs: dict[int, Runs]  # by seed, then label
    values: dict[str, dict[str, tuple[float, ...]]]  # quantity -> label -> one value per seed
    verdicts: list
    figures: list[Path]
    seconds: float


def reproduce_command(experiment: Experiment, preset: str, data: str, seeds: tuple[int, ...], args: dict) -> list[str]:
    """The shortest command that reproduces this report: only what differs from the defaults."""
    words = ["verydeep", "reproduce", experiment.name, "--preset", preset]
    if data != "fashion-mnist":
        words += ["--data", data]
    if preset in experiment.presets and len(seeds) != experiment.presets[preset].seeds:
        words += ["--seeds", str(len(seeds))]
    if seeds and seeds[0] != 0:
        words += ["--seed", str(seeds[0])]
    for key, value in args.items():
        if value != experiment.defaults.get(key):
            words += [f"--{key}", ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return words


def verdict_entry(v: Verdict, command: str = "") -> dict:
    """A verdict as summary.json and index.json give it."""
    c = v.claim
    entry = {"key": c.key, "source": c.source, "claim": c.statement, "a": v.a, "b": v.b, "relation": c.relation,
             "quantity": c.quantity, "outcome": v.outcome, "paper": c.paper}  # fmt: skip
    if c.margin is not None:
        entry["margin"] = c.margin
    if v.difference is not None:
        d = v.difference
        entry |= {
            "values_a": list(v.values_a), "values_b": list(v.values_b),
            "mean_a": d.mean_a, "std_a": d.std_a, "mean_b": d.mean_b, "std_b": d.std_b, "seeds": d.n_a,
            "difference": d.value, "interval": None if d.low is None else [d.low, d.high], "level": d.level,
            "test": TESTS.get(c.relation, "Welch's t") + (f"; {v.looks.describe()}" if v.looks else ""),
            "p": d.p_value,
            "unit": v.quantity.unit,
        }  # fmt: skip
    else:
        entry["why"] = v.why
    entry["evidence"] = v.evidence()
    if command:
        entry["command"] = command
    return entry


def ours(v: Verdict) -> str:
    """'a m ± s vs b m ± s' in the quantity's units, for the index's table."""
    if v.difference is None:
        return ""
    d, q = v.difference, v.quantity
    return f"{v.a} {q.format(d.mean_a)} ± {q.format(d.std_a)} vs {v.b} {q.format(d.mean_b)} ± {q.format(d.std_b)}"


def interval(v: Verdict) -> str:
    d = v.difference
    if d is None or d.low is None:
        return ""
    q = v.quantity
    level = "" if abs(d.level - 0.95) < 1e-9 else f" ({100 * d.level:g}%)"
    return f"{q.format_difference(d.value)} [{q.format_difference(d.low)}, {q.format_difference(d.high)}]{level}"


def write_experiment(out: Path, r: Reproduction) -> None:
    command = " ".join(reproduce_command(r.experiment, r.preset, r.data, r.seeds, r.args))
    header, rows = table(r)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    summary = {
        "experiment": r.experiment.name,
        "preset": r.preset,
        "data": r.data,
        "seeds": list(r.seeds),
        "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in r.args.items()},
        "command": command,
        "runs": {
            label: [run_entry(seed_runs[label], seed) for seed, seed_runs in r.runs.items() if label in seed_runs]
            for label in next(iter(r.runs.values()))
        },  # fmt: skip
        "values": {q: {label: list(v) for label, v in by_label.items()} for q, by_label in r.values.items()},
        "verdicts": [verdict_entry(v, command) for v in r.verdicts],
        "figures": [f.name for f in r.figures],
        "seconds": r.seconds,
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    write_report(out / "report.md", r, command, header, rows)


def run_entry(result, seed: int) -> dict:
    s = result.summary
    return {"seed": seed, "model": result.spec.model, "folder": str(result.path), "train_error": s.train_error,
            "val_error": s.val_error, "steps": s.steps, "seconds": s.seconds}  # fmt: skip


def table(r: Reproduction) -> tuple[list[str], list[list[str]]]:
    """A row per configuration: each quantity's mean ± std over the seeds, and the paper's figure."""
    quantities = {name: q for name, q in r.experiment.quantities.items() if r.values.get(name)}
    header = ["run", "seeds"] + [q.title for q in quantities.values()] + ["paper"]
    rows = []
    for label, result in next(iter(r.runs.values())).items():
        row = [label, str(sum(label in seed_runs for seed_runs in r.runs.values()))]
        for name, q in quantities.items():
            values = r.values[name].get(label)
            if not values:
                row.append("")
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            row.append(f"{q.format(statistics.fmean(values))} ± {q.format(std)}")
        rows.append(row + [r.experiment.paper_figure(result.spec)])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path, r: Reproduction, command: str, header: list[str], rows: list[list[str]]) -> None:
    experiment, chosen = r.experiment, r.experiment.presets[r.preset]
    first = next(iter(r.runs[r.seeds[0]].values()))
    record = RunDir(first.path).read_record()
    recipe, sizes = record.recipe, record.data.sizes
    lines = [
        f"# {experiment.title}",
        "",
        f"**The paper** ({experiment.source}): {experiment.paper}",
        "",
        f"**Ours**: `{command}`",
        "",
        f"- preset `{r.preset}`: {chosen.description}",
        f"- data: {r.data} ({sizes['train']:,} training / {sizes['val']:,} held-out validation images), recipe "
        f"`{recipe.name}` ({recipe.section}), seeds {', '.join(map(str, r.seeds))}",
        f"- on {record.run.device} with {record.run.precision}, torch {record.environment['torch']}",
    ]
    lines += [f"- deviation from the paper: {d}" for d in experiment.deviations]
    if chosen.overrides:
        changed = ", ".join(f"{k}={v}" for k, v in chosen.overrides.items())
        lines.append(f"- recipe fields changed by this preset: {changed}")
    lines += ["", "## Verdicts", "",
              "Each claim compares the mean over the seeds; reproduced: the 95% interval of the difference lies on "
              "the paper's side of zero; contradicted: on the other side; inconclusive: it holds zero. An "
              "equivalence claim is reproduced when the 90% interval lies inside its margin (two one-sided tests).",
              ""]  # fmt: skip
    if chosen.looks is not None and len(r.seeds) == chosen.seeds:
        lines[-1:-1] = ["", f"This preset reads its verdicts in looks: {chosen.looks.describe()}. The claims still "
                        "open at a look have their runs trained on more seeds; a claim keeps the verdict of the "
                        "first look that decides it. The intervals below are that look's.", ]  # fmt: skip
    ledger = {c.key: c for c in CLAIMS}
    for v in r.verdicts:
        line = f"- **{MARKS[v.outcome]}** ({v.claim.source}): {v.claim.statement}. {v.evidence()}"
        own = ledger[v.claim.key].quantity
        if v.claim.quantity != own:
            line += (
                f" Deviation: this preset reads it as the {experiment.quantities[v.claim.quantity].title}, not "
                f"the {experiment.quantities[own].title} the ledger compares, as the calibration's rule picked "
                "(docs/calibration.md): it can show a difference where the other reading's noise hides it"
            )
            if own == "val_error":
                line += ", and a training error shows how well a net fits its images, not how well it generalises"
            line += "."
        if calibration.studied(v.claim.key):
            line += f" Calibration: {calibration.finding(v.claim.key)}."
        lines.append(line)
    lines += ["", "## Results (mean ± std over the seeds)", "", markdown_table(header, rows), ""]
    for figure in r.figures:
        lines += [f"![{figure.stem}]({figure.name})", ""]
    lines += ["## Runs", "", "Every run this report rests on:", ""]
    for seed, seed_runs in r.runs.items():
        for label, result in seed_runs.items():
            where = os.path.relpath(result.path, path.parent)
            lines.append(f"- {label}, seed {seed}: `{where}` ({result.summary.steps} steps, "
                         f"{result.summary.seconds:.0f} s of training)")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def machine(reproductions: list[Reproduction]) -> dict:
    """Where the runs trained, from each run's record: the machine most runs trained on, and under ``machines``
    every distinct one with its count of runs (an index resumed on another machine rests on both)."""
    counts: dict[tuple, int] = {}
    for result in {result.path: result for r in reproductions for runs in r.runs.values() for result in runs.values()
                   }.values():  # fmt: skip
        record = RunDir(result.path).read_record()
        env = record.environment
        key = (env.get("cpu") or env.get("processor"), env.get("cpu_cores"), env.get("cpu_native_bf16"),
               env.get("cuda"), env.get("torch"), record.run.device, record.run.precision)  # fmt: skip
        counts[key] = counts.get(key, 0) + 1
    fields = ("cpu", "cores", "native_bf16", "cuda", "torch", "device", "precision")
    found = [dict(zip(fields, key)) | {"runs": n} for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return {k: v for k, v in found[0].items() if k != "runs"} | {"machines": found} if found else {}


def write_index(root: Path, reproductions: list[Reproduction], preset: str) -> tuple[Path, Path]:
    """reproductions/index.md and index.json: a row per claim of the ledger, in its order, with its verdict."""
    found: dict[str, tuple[Verdict, str, Reproduction]] = {}
    for r in reproductions:
        command = " ".join(reproduce_command(r.experiment, r.preset, r.data, r.seeds, r.args))
        for v in r.verdicts:
            found[v.claim.key] = (v, command, r)
    entries, lines = (
        [],
        [
            f"# Every claim, preset `{preset}`",
            "",
            "| claim | source | paper | ours (mean ± std) | difference [95% interval] | verdict | command |",
            "|---|---|---|---|---|---|---|",
        ],
    )
    earlier = earlier_differences(root, preset)
    budgets: list[str] = []
    for claim in CLAIMS:
        if claim.key not in found:
            continue
        v, command, r = found[claim.key]
        images = trained_images(r, v.a)
        entries.append(verdict_entry(v, command) | {"preset": r.preset, "seeds": list(r.seeds),
                                                     "images_per_run": images})  # fmt: skip
        lines.append(f"| {claim.statement} | {claim.source} | {claim.paper} | {ours(v)} | {interval(v)} | "
                     f"**{MARKS[v.outcome]}** | `{command}` |")  # fmt: skip
        if preset != "smoke" and (line := budget(v, Measured(r.preset, claim.key, images), earlier, r.experiment)):
            budgets.append(line)
    counts = {o: sum(f[0].outcome == o for f in found.values()) for o in MARKS}
    lines += ["", ", ".join(f"{n} {o}" for o, n in counts.items() if n), ""]
    if budgets:
        lines += ["## Budgets of the inconclusive claims", "",
                  "Each difference at the smaller presets' indexes and at this one, what the calibration study "
                  "measured of the claim (docs/calibration.md), and what `full` runs on a GPU.", ""]  # fmt: skip
        lines += [f"- {b}" for b in budgets] + [""]
    for r in reproductions:
        for figure in r.figures:
            lines += [f"![{figure.stem}]({os.path.relpath(figure, root)})", ""]
    md, js = root / "index.md", root / "index.json"
    md.write_text("\n".join(lines) + "\n")
    experiments = {r.experiment.name: {"command": " ".join(reproduce_command(r.experiment, r.preset, r.data, r.seeds,
                                                                            r.args)),
                                       "report": f"{r.experiment.name}-{r.preset}/report.md", "seconds": r.seconds,
                                       "train_seconds": train_seconds(r)}
                   for r in reproductions}  # fmt: skip
    index = {"preset": preset, "machine": machine(reproductions), "experiments": experiments, "claims": entries,
             "counts": counts, "budgets": budgets}  # fmt: skip
    text = (json.dumps(index, indent=2) + "\n").encode()
    atomic_write_bytes(js, text)
    atomic_write_bytes(root / f"index-{preset}.json", text)  # kept when another preset writes index.json
    return md, js


PRESETS = ("smoke", "quick", "standard", "long", "full")  # smallest budget first


def train_seconds(r: Reproduction) -> float:
    """The training time of every run the experiment rests on, each on its own core (whenever and by whichever
    experiment it was trained): what the experiment costs, where ``seconds`` is only this call's wall time."""
    return sum(result.summary.seconds for runs in r.runs.values() for result in runs.values())


def trained_images(r: Reproduction, label: str) -> int | None:
    """Images the run of ``label`` trained on (steps x batch), at the first seed: the budget a trend is drawn on."""
    result = next(iter(r.runs.values())).get(label)
    if result is None:
        return None
    return result.summary.steps * RunDir(result.path).read_record().recipe.batch_size


@dataclass(frozen=True)
class Measured:
    """Where a claim's difference was measured: the preset, and the images each run of it trained on."""

    preset: str
    key: str  # the claim's
    images_per_run: int | None
    difference: float | None = None  # as an earlier index holds it (this one's is the verdict's own)


def earlier_differences(root: Path, preset: str) -> list[Measured]:
    """The claims' differences in the index-P.json of every preset P smaller than ``preset`` that this root holds,
    smallest first."""
    if preset not in PRESETS:
        return []
    found = []
    for smaller in PRESETS[1 : PRESETS.index(preset)]:  # smoke's runs show nothing: no trend starts there
        path = root / f"index-{smaller}.json"
        if path.exists():
            index = json.loads(path.read_text())
            found += [Measured(index["preset"], c["key"], c.get("images_per_run"), c.get("difference"))
                      for c in index["claims"]]  # fmt: skip
    return found


def budget(v: Verdict, here: Measured, earlier: list[Measured], experiment: Experiment) -> str:
    """For an inconclusive claim: its difference at every preset measured, and what the calibration study found
    of it (a budget is measured there, never extrapolated from the presets)."""
    d = v.difference
    if v.outcome != "inconclusive" or d is None or d.low is None or not here.images_per_run:
        return ""
    show = v.quantity.format_difference
    steps = [f"{show(m.difference)} at {m.preset} ({m.images_per_run:,} images)" for m in earlier
             if m.key == v.claim.key and m.images_per_run and m.difference is not None]  # fmt: skip
    steps.append(f"{show(d.value)} at {here.preset} ({here.images_per_run:,} images)")
    text = f"**{v.claim.statement}** ({v.a} vs {v.b}): " + " -> ".join(steps)
    text += f"; {calibration.finding(v.claim.key)}"
    if "full" in experiment.presets:
        full = experiment.presets["full"]
        text += f". `full` ({full.seeds} seeds): {full.description}"
    return text + "."

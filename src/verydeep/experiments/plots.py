"""Figures in the papers' style: thin training-error curves, bold validation-error curves, against iterations."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # not pyplot: drawing here leaves the caller's backend and figures alone

from .base import RunResult, Runs

COLOURS = ("tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:grey")


def over_seeds(seeds: dict[int, Runs], label: str) -> list[RunResult]:
    """One configuration's runs, one per seed."""
    return [runs[label] for runs in seeds.values()]


def mean_band(results: list[RunResult], column: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps, mean, lowest, highest) of one metrics column over the runs of several seeds, on the steps all of
    them logged."""
    series = [dict(zip(*r.series(column))) for r in results]
    steps = sorted(set.intersection(*(set(s) for s in series)))
    values = [[s[step] for s in series] for step in steps]
    return steps, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def error_curves(panels: dict[str, list[list[RunResult]]], path: Path, title: str = "") -> Path:
    """One panel per group; in each, every configuration's training error (thin) and validation error (bold), in
    %, as the mean over its seeds in a band that holds every seed."""
    fig = Figure(figsize=(5.2 * len(panels), 4))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (name, configurations) in zip(axes[0], panels.items()):
        for colour, results in zip(COLOURS, configurations):
            for column, width, marker in (("train_error", 0.8, None), ("val_error", 2.4, "o")):
                steps, mean, low, high = mean_band(results, column)
                label = results[0].spec.label if column == "val_error" else None
                ax.plot(steps, [100 * e for e in mean], color=colour, linewidth=width, marker=marker, markersize=3,
                        label=label)  # fmt: skip
                if len(results) > 1:
                    ax.fill_between(steps, [100 * e for e in low], [100 * e for e in high], color=colour, alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("error (%)  thin: training, bold: validation")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def seeds_note(seeds: dict) -> str:
    n = len(seeds)
    return "one seed" if n == 1 else f"mean over {n} seeds, the band holds every seed"


def bars(labels: list[str], values: list[list[float]], path: Path, ylabel: str, title: str = "") -> Path:
    """A bar per label at the mean of its values (one per seed), each value a dot on it."""
    fig = Figure(figsize=(1.1 * len(labels) + 2, 3.6))
    ax = fig.subplots()
    means = [sum(v) / len(v) for v in values]
    ax.bar(labels, means, color=COLOURS[2], alpha=0.8)
    for i, (mean, each) in enumerate(zip(means, values)):
        ax.scatter([i] * len(each), each, color="black", s=10, zorder=3)
        ax.annotate(f"{mean:.2f}", (i, max(each)), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def line_panels(
    panels: dict[str, dict[str, list[list[float]]]], path: Path, xlabel: str, ylabel: str, title: str = ""
) -> Path:
    """Panels of named lines (values against their index, e.g. per-layer response strength), each the mean over
    its seeds' lines in a band that holds every seed."""
    fig = Figure(figsize=(5.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items()):
        for colour, (label, seeds) in zip(COLOURS, lines.items()):
            x = range(1, min(len(v) for v in seeds) + 1)
            at = [[v[i - 1] for v in seeds] for i in x]
            ax.plot(x, [sum(v) / len(v) for v in at], color=colour, label=label, linewidth=1.4)
            if len(seeds) > 1:
                ax.fill_between(x, [min(v) for v in at], [max(v) for v in at], color=colour, alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

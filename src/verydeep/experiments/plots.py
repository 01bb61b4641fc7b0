"""Figures in the papers' style: thin training-error curves, bold validation-error curves, against iterations."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # not pyplot: drawing here leaves the caller's backend and figures alone

from .base import RunResult

COLOURS = ("tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:grey")


def error_curves(panels: dict[str, list[RunResult]], path: Path, title: str = "") -> Path:
    """One panel per group; in each, every run's training error (thin) and validation error (bold), in %."""
    fig = Figure(figsize=(5.2 * len(panels), 4))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (name, results) in zip(axes[0], panels.items()):
        for colour, result in zip(COLOURS, results):
            steps, train = result.series("train_error")
            ax.plot(steps, [100 * e for e in train], color=colour, linewidth=0.8, alpha=0.8)
            steps, val = result.series("val_error")
            ax.plot(steps, [100 * e for e in val], color=colour, linewidth=2.4, marker="o", markersize=3,
                    label=result.spec.label)  # fmt: skip
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


def bars(labels: list[str], values: list[float], path: Path, ylabel: str, title: str = "") -> Path:
    fig = Figure(figsize=(1.1 * len(labels) + 2, 3.6))
    ax = fig.subplots()
    ax.bar(labels, values, color=COLOURS[2])
    for i, v in enumerate(values):
        ax.annotate(f"{v:.2f}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def line_panels(panels: dict[str, dict[str, list[float]]], path: Path, xlabel: str, ylabel: str) -> Path:
    """Panels of named lines (values against their index), e.g. per-layer response strength."""
    fig = Figure(figsize=(5.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items()):
        for colour, (label, values) in zip(COLOURS, lines.items()):
            ax.plot(range(1, len(values) + 1), values, color=colour, label=label, linewidth=1.4)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

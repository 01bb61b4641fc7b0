"""The papers' experiments, each a short declarative description over the one training loop."""

from __future__ import annotations

import difflib

from . import degradation, gradients, layer_responses, protocols, shortcuts, vgg_depth, vgg_init, warmup
from .base import Experiment
from .runner import reproduce, reproduce_all
from .workers import ExperimentFailed, ExperimentInterrupted

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    # Those that measure another's trained weights come right after it, while the weights are at hand (results/
    # keeps the run records and the measurements, measure_*.json, not the weights).
    for e in (
        degradation.EXPERIMENT,
        layer_responses.EXPERIMENT,
        gradients.EXPERIMENT,
        protocols.EXPERIMENT,
        vgg_depth.EXPERIMENT,
        vgg_init.EXPERIMENT,
        shortcuts.EXPERIMENT,
        warmup.EXPERIMENT,
    )
}

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "ExperimentFailed",
    "ExperimentInterrupted",
    "get_experiment",
    "reproduce",
    "reproduce_all",
]


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        close = difflib.get_close_matches(name, EXPERIMENTS, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown experiment {name!r}.{hint} Valid: {', '.join(EXPERIMENTS)} (`verydeep reproduce --list`)"
        )
    return EXPERIMENTS[name]

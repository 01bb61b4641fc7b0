"""Depth in VGG (VGG Table 3): configurations A to E trained with one recipe, validation error against depth."""

from __future__ import annotations

from pathlib import Path

from .. import paper
from .base import VGG_PRESETS, Experiment, Preset, RunResult, RunSpec, Verdict, compare_val_errors, percent
from .plots import bars

CONFIGS = {"A": "vgg_a", "A-LRN": "vgg_a_lrn", "B": "vgg_b", "C": "vgg_c", "D": "vgg_d", "E": "vgg_e"}
WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    unknown = [c for c in args["configs"] if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown VGG configuration {', '.join(unknown)}; valid: {', '.join(CONFIGS)}")
    return [RunSpec(label, CONFIGS[label]) for label in args["configs"]]


def verdicts(results: dict[str, RunResult], analysis: dict) -> list[Verdict]:
    claims = [
        ("E", "A", "depth helps: E (19 weight layers) has no higher error than A (11)"),
        ("A", "A-LRN", "LRN does not help: A-LRN is no better than A"),
        ("D", "C", "1x1 convs are worse than 3x3 at equal depth: C has no lower error than D"),
    ]
    return [compare_val_errors(results, claim, better, worse) for better, worse, claim in claims
            if {better, worse} <= set(results)]  # fmt: skip


def figures(results: dict[str, RunResult], analysis: dict, out: Path) -> list[Path]:
    labels = [label for label in CONFIGS if label in results]
    values = [100 * results[label].summary.val_error for label in labels]
    names = [f"{label}\n({WEIGHT_LAYERS[label]})" for label in labels]
    return [bars(names, values, out / "vgg_depth.png", "validation error (%)", "Error against configuration (layers)")]


def table(results: dict[str, RunResult], analysis: dict) -> tuple[list[str], list[list[str]]]:
    header = ["config", "weight layers", "train error %", "val error %", "val top-5 %", "paper top-1 / top-5 (S=256)"]
    rows = []
    for label in CONFIGS:
        if label not in results:
            continue
        s = results[label].summary
        top1, top5 = paper.VGG_TABLE3_S256[CONFIGS[label]]
        rows.append([label, str(WEIGHT_LAYERS[label]), percent(s.train_error), percent(s.val_error),
                     percent(s.val_top5_error), f"{top1} / {top5}"])  # fmt: skip
    return header, rows


EXPERIMENT = Experiment(
    name="vgg_depth",
    title="VGG: deeper configurations are better (A to E)",
    source="VGG Table 3",
    paper="top-1 error falls from 29.6% (A, 11 layers) to 27.0-27.3% (D, E; 16-19 layers) at S=256; A-LRN "
    "(29.7%) is no better than A; C with three 1x1 convs (28.1%) is worse than D with 3x3 convs (27.0%).",
    recipe="vgg",
    defaults={"configs": tuple(CONFIGS)},
    presets=VGG_PRESETS,
    runs=runs,
    figures=figures,
    verdicts=verdicts,
    table=table,
    deviations=(
        "Fashion-MNIST's 28x28 images with the small-image head (global average pool, FC-512, FC-512) instead of "
        "224x224 ImageNet crops with FC-4096; errors are validation errors of the single image",
    ),
)

"""The degradation problem (ResNet Fig. 6 on CIFAR-10, Fig. 4 on ImageNet).

Plain nets get worse as they get deeper, on the training set too, so it is not overfitting; the same nets
with shortcuts do not.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from .. import paper
from ..models.resnet import IMAGENET_STAGES
from ..registry import get_entry
from .base import RESNET_SMOKE, Experiment, Preset, RunResult, RunSpec, Verdict, percent
from .plots import error_curves


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    depths = args["depths"]
    imagenet = [d in IMAGENET_STAGES for d in depths]
    if any(imagenet) and not all(imagenet):
        raise ValueError(
            f"--depths {','.join(map(str, depths))} mixes ImageNet depths ({', '.join(map(str, IMAGENET_STAGES))}) "
            "with CIFAR-style ones (6n+2); give one kind, e.g. 20,56 or 18,34"
        )
    recipe = "resnet_imagenet" if all(imagenet) else "resnet_cifar"
    residual_options = {"zero_init_residual": True} if preset.extra.get("zero_init_residual") else {}
    if all(imagenet):
        residual_options["shortcut"] = "A"  # Fig. 4 compares parameter-free shortcuts: zero-padding (Sec. 4.1)
    specs = [RunSpec(f"plain-{d}", f"plain{d}", group="plain", recipe=recipe) for d in depths]
    specs += [RunSpec(f"ResNet-{d}", f"resnet{d}", residual_options, group="ResNet", recipe=recipe) for d in depths]
    return specs


def final_epoch_windows(result: RunResult) -> list[float]:
    """The training error of each logged window in the last epoch."""
    steps, errors = result.series("train_error")
    epoch_rows = [r.step for r in result.metrics if r.is_epoch]
    start = epoch_rows[-2] if len(epoch_rows) > 1 else 0
    return [e for s, e in zip(steps, errors) if s > start] or errors[-1:]


def standard_error(result: RunResult) -> float:
    windows = final_epoch_windows(result)
    return statistics.stdev(windows) / len(windows) ** 0.5 if len(windows) > 1 else float("inf")


def compare(deep: RunResult, shallow: RunResult, higher: bool, claim: str) -> Verdict:
    """``deep`` has a higher (or, with higher=False, no higher) final training error than ``shallow``."""
    a, b = deep.summary.train_error, shallow.summary.train_error
    holds = a > b if higher else a <= b
    noise = 2 * (standard_error(deep) ** 2 + standard_error(shallow) ** 2) ** 0.5
    evidence = (
        f"Final-epoch training error {deep.spec.label} {percent(a)}% vs {shallow.spec.label} {percent(b)}% "
        f"(difference {100 * (a - b):+.2f} points; two standard errors of the windows' mean: {100 * noise:.2f})."
    )
    return Verdict(claim, holds, evidence, within_noise=abs(a - b) < noise)


def verdicts(results: dict[str, RunResult], analysis: dict) -> list[Verdict]:
    plain = sorted((r for r in results.values() if r.spec.group == "plain"), key=depth)
    resnet = sorted((r for r in results.values() if r.spec.group == "ResNet"), key=depth)
    return [
        compare(plain[-1], plain[0], True, f"the deeper plain net ({plain[-1].spec.label}) has the higher "
                f"training error than {plain[0].spec.label}: the degradation problem"),
        compare(resnet[-1], resnet[0], False, f"the deeper ResNet ({resnet[-1].spec.label}) has a training "
                f"error no higher than {resnet[0].spec.label}: residual learning removes the degradation"),
    ]  # fmt: skip


def depth(result: RunResult) -> int:
    return get_entry(result.spec.model).depth


def figures(results: dict[str, RunResult], analysis: dict, out: Path) -> list[Path]:
    panels = {
        "plain": sorted((r for r in results.values() if r.spec.group == "plain"), key=depth),
        "ResNet": sorted((r for r in results.values() if r.spec.group == "ResNet"), key=depth),
    }
    title = "Training (thin) and validation (bold) error: plain nets degrade with depth, ResNets do not"
    return [error_curves(panels, out / "degradation.png", title)]


def paper_error(result: RunResult) -> str:
    name = result.spec.model
    if name in paper.CIFAR_TABLE6:
        return f"{paper.CIFAR_TABLE6[name][1]} (CIFAR-10 test, Table 6)"
    if name in paper.FIG6_PLAIN_TEST_ERROR:
        low, high = paper.FIG6_PLAIN_TEST_ERROR[name]
        return f"{low}-{high} (CIFAR-10 test, reproductions of Fig. 6)"
    if name in paper.RESNET_TABLE2_TOP1:
        return f"{paper.RESNET_TABLE2_TOP1[name]} (ImageNet top-1, 10-crop, Table 2)"
    return ""


def table(results: dict[str, RunResult], analysis: dict) -> tuple[list[str], list[list[str]]]:
    header = ["run", "layers", "train error %", "val error %", "steps", "paper's error %"]
    rows = [
        [label, str(depth(r)), percent(r.summary.train_error), percent(r.summary.val_error),
         str(r.summary.steps), paper_error(r)]
        for label, r in sorted(results.items(), key=lambda kv: (kv[1].spec.group != "plain", depth(kv[1])))
    ]  # fmt: skip
    return header, rows


EXPERIMENT = Experiment(
    name="degradation",
    title="The degradation problem: plain nets vs ResNets as depth grows",
    source="ResNet Fig. 6 (CIFAR-10) and Fig. 4 (ImageNet)",
    paper="deeper plain nets have higher training error (plain-56 above plain-20 on CIFAR-10, plain-34 above "
    "plain-18 on ImageNet), while deeper ResNets have lower training error than shallower ones.",
    recipe="resnet_cifar",
    defaults={"depths": (20, 56)},
    presets={
        "smoke": RESNET_SMOKE,
        "quick": Preset(
            "10,000 training images for 5 epochs; unlike the paper, a batch of 32 with the learning rate scaled to "
            "match (0.025; Goyal et al. 2017), which gives four times the SGD steps for the same compute on a CPU, "
            "and each ResNet block's last BN initialised to zero, so that the added layers start as the identity "
            "mappings the paper's argument rests on (Sec. 3.1); milestones at 50% and 75% as the paper's",
            epochs=5,
            subset=10_000,
            overrides={"batch_size": 32, "lr": 0.025},
            log_every=10,
            extra={"zero_init_residual": True},
        ),
        "full": Preset("the paper's schedule: 64k iterations of batch 128 on the whole training split"),
    },  # fmt: skip
    runs=runs,
    figures=figures,
    verdicts=verdicts,
    table=table,
    deviations=("Fashion-MNIST (28x28 grey, 10 classes) stands in for CIFAR-10 unless --data says otherwise",),
)

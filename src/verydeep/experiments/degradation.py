"""The degradation problem (ResNet Fig. 6 on CIFAR-10, Fig. 4 on ImageNet).

Plain nets get worse as they get deeper, on the training set too, so it is not overfitting; the same nets
with shortcuts do not.
"""

from __future__ import annotations

from pathlib import Path

from .. import paper
from ..evidence import Looks
from ..models.resnet import IMAGENET_STAGES
from ..registry import by_paper_name, get_entry
from .base import (
    EARLY_TRAIN_ERROR,
    RESNET_SMOKE,
    TAIL_TRAIN_ERROR,
    TRAIN_ERROR,
    VAL_ERROR,
    Experiment,
    Preset,
    RunResult,
    Runs,
    RunSpec,
)
from .plots import error_curves, over_seeds, seeds_note

# quick and standard: a batch of 32 with the learning rate scaled to match (Goyal et al. 2017)
CPU_BATCH = {"batch_size": 32, "lr": 0.025}


def runs(args: dict, preset: Preset) -> list[RunSpec]:
    depths = args["depths"]
    imagenet = [d in IMAGENET_STAGES for d in depths]
    if any(imagenet) and not all(imagenet):
        raise ValueError(
            f"--depths {','.join(map(str, depths))} mixes ImageNet depths ({', '.join(map(str, IMAGENET_STAGES))}) "
            "with CIFAR-style ones (6n+2); give one kind, e.g. 20,56 or 18,34"
        )
    recipe = "resnet_imagenet" if all(imagenet) else "resnet_cifar"
    residual_options = {}
    if all(imagenet):
        residual_options["shortcut"] = "A"  # Fig. 4 compares parameter-free shortcuts: zero-padding (Sec. 4.1)
    plain, resnets = [f"plain-{d}" for d in depths], [f"ResNet-{d}" for d in depths]  # the papers' names
    specs = [RunSpec(label, by_paper_name(label).name, group="plain", recipe=recipe) for label in plain]
    specs += [RunSpec(label, by_paper_name(label).name, residual_options, group="ResNet", recipe=recipe)
              for label in resnets]  # fmt: skip
    return specs


def names(args: dict) -> dict[str, str]:
    """The claims' placeholders: the shallowest and deepest of the depths compared."""
    return {"shallow": str(min(args["depths"])), "deep": str(max(args["depths"]))}


def depth(result: RunResult) -> int:
    return get_entry(result.spec.model).depth


def figures(seeds: dict[int, Runs], out: Path) -> list[Path]:
    results = next(iter(seeds.values()))
    panels = {
        group: [over_seeds(seeds, r.spec.label) for r in sorted(results.values(), key=depth) if r.spec.group == group]
        for group in ("plain", "ResNet")
        if any(r.spec.group == group for r in results.values())  # long trains the ResNets alone
    }
    title = "Training (thin) and validation (bold) error"
    title += ":\nplain nets degrade with depth, ResNets do not" if len(panels) > 1 else f" of the {', '.join(panels)}s"
    title += f"\n({seeds_note(seeds)})"
    return [error_curves(panels, out / "degradation.png", title)]


def paper_error(spec: RunSpec) -> str:
    name = spec.model
    if name in paper.CIFAR_TABLE6:
        return f"{paper.CIFAR_TABLE6[name][1]} (CIFAR-10 test, Table 6)"
    if name in paper.FIG6_PLAIN_TEST_ERROR:
        low, high = paper.FIG6_PLAIN_TEST_ERROR[name]
        return f"{low}-{high} (CIFAR-10 test, reproductions of Fig. 6)"
    if name in paper.RESNET_TABLE2_TOP1:
        return f"{paper.RESNET_TABLE2_TOP1[name]} (ImageNet top-1, 10-crop, Table 2)"
    return ""


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
            "5 seeds of 3 epochs on 6,000 training images, each claim read by Welch's t on Hsu's degrees of freedom "
            "(a seed of plain-56 that stalls near chance no longer hides the degradation: docs/calibration.md "
            "simulates it; the compute of 3 seeds of 5 epochs); unlike the paper, a batch of 32 with the learning "
            "rate scaled to match (0.025; Goyal et al. 2017), which gives four times the SGD steps for the same "
            "compute on a CPU; milestones at 50% and 75% as the paper's",
            epochs=3,
            subset=6_000,
            overrides=CPU_BATCH,
            log_every=10,
            seeds=5,
            looks=Looks((5,)),
        ),
        "standard": Preset(
            "3 seeds of 8 epochs on 16,000 training images, otherwise as quick (about 45 minutes on 2 cores with "
            "native bf16, so that every experiment's standard runs in one sitting of under two hours)",
            epochs=8,
            subset=16_000,
            overrides=CPU_BATCH,
            log_every=20,
            seeds=3,
        ),
        "long": Preset(
            "the calibration's pick for the ResNet reversal (docs/calibration.md): ResNet-20 and ResNet-56 only "
            "(the reversal's runs; standard decides the claims about the plain nets), 75 epochs on 2,000 training "
            "images (150,000 images a run), as quick otherwise; seeds 5, then 8 if the claim is still open; the "
            "reversal read as the training error over the last tenth of the run. About 1 to 2 hours on 2 cores",
            epochs=75,
            subset=2_000,
            overrides={**CPU_BATCH, "schedule": "step", "milestones": (0.5, 0.75)},
            log_every=20,
            seeds=5,
            looks=Looks((5, 8)),
            readings={"resnet-fig6-resnet-deeper-better": "tail_train_error"},
            claims=("resnet-fig6-resnet-deeper-better",),
        ),
        "full": Preset("the paper's schedule: 64k iterations of batch 128 on the whole training split", seeds=5),
    },  # fmt: skip
    runs=runs,
    quantities={
        "train_error": TRAIN_ERROR,
        "val_error": VAL_ERROR,
        "early_train_error": EARLY_TRAIN_ERROR,
        "tail_train_error": TAIL_TRAIN_ERROR,
    },  # fmt: skip
    figures=figures,
    names=names,
    paper_figure=paper_error,
    deviations=("Fashion-MNIST (28x28 grey, 10 classes) stands in for CIFAR-10 unless --data says otherwise",),
)
# The experiments that measure these very runs: every preset but long, which trains only the reversal's ResNets.
SHARED_PRESETS = {name: preset for name, preset in EXPERIMENT.presets.items() if name != "long"}

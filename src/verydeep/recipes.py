"""The papers' training recipes as frozen dataclasses, each field citing where it comes from.

Milestones are fractions of the run, so the paper's full schedule is exact (0.5 x 64k = 32k iterations) and a
short run (``--epochs 30``) keeps its shape. Overrides go through :func:`override`, which rejects unknown
fields and values of the wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Literal

Schedule = Literal["step", "plateau", "cosine"]

# Fields added after version 0.1 say so; at their defaults they are left out of a run's key (``recipe_key``),
# so that the runs trained before them keep their folders.
ADDED_IN_0_2 = {"since": "0.2"}


@dataclass(frozen=True)
class Recipe:
    name: str
    section: str  # where the paper gives it
    batch_size: int  # images per SGD step (the global batch under DDP)
    lr: float  # initial learning rate
    momentum: float
    weight_decay: float  # L2 penalty multiplier
    iterations: int  # the paper's length of training, in SGD steps
    schedule: Schedule = "step"
    milestones: tuple[float, ...] = ()  # step schedule: fractions of the run; lr *= lr_factor at each
    lr_factor: float = 0.1  # "divided by 10"
    plateau_patience: int = 3  # plateau schedule: epochs without a better validation error before a drop (ours)
    plateau_max_drops: int = 3  # plateau schedule: at most this many drops
    warmup_lr: float = 0.0  # lr used until the training error first falls below warmup_until_error (0: none)
    warmup_until_error: float = 0.8
    warmup_for: tuple[str, ...] = ()  # the models that get the warm-up
    mean: Literal["pixel", "rgb"] = "pixel"  # what is subtracted from the input
    augment: bool = True  # random crops and flips of the training images (both papers)
    scale: tuple[int, int] = (256, 480)  # image folders: shorter side drawn uniformly from this range
    color_jitter: bool = True  # image folders: AlexNet's PCA colour shift
    label_smoothing: float = 0.0  # neither paper uses it; here for experiments beyond them
    # In-memory sets: VGG's scale jittering (Sec. 3.1) carried to small images. A training image is rescaled to
    # S x S, S drawn uniformly from [small_scale], and a crop of the native size is taken at random, mirrored
    # at random; validation and test images are rescaled to Q = the range's middle and seen whole, as the fully
    # convolutional net sees them at test scale Q = 0.5 (Smin + Smax) (Sec. 3.2, 4.1). 256-512 for 224 px crops
    # is 32-64 for 28 px images; (32, 32) is the fixed scale S = 256. (): ResNet's pad-and-crop at native size.
    small_scale: tuple[int, ...] = field(default=(), metadata=ADDED_IN_0_2)

    def __post_init__(self):
        if self.small_scale and not (len(self.small_scale) == 2 and 0 < self.small_scale[0] <= self.small_scale[1]):
            raise ValueError(
                f"small_scale must be two sides Smin,Smax with Smin <= Smax (e.g. 32,64), not {self.small_scale}"
            )

    def milestone_steps(self, total_steps: int) -> list[int]:
        return [round(f * total_steps) for f in self.milestones]


RECIPES: dict[str, Recipe] = {
    "resnet_cifar": Recipe(
        name="resnet_cifar",
        section="ResNet Sec. 4.2",
        batch_size=128,  # "mini-batch size of 128"
        lr=0.1,  # "start with a learning rate of 0.1"
        momentum=0.9,  # "a momentum of 0.9"
        weight_decay=1e-4,  # "weight decay of 0.0001"
        iterations=64_000,  # "terminate training at 64k iterations"
        schedule="step",
        milestones=(0.5, 0.75),  # "divide it by 10 at 32k and 48k iterations"
        warmup_lr=0.01,  # ResNet-110: "0.01 to warm up the training until the training error is below 80%"
        warmup_until_error=0.8,
        warmup_for=("resnet110", "resnet1202"),  # 1202 layers: "the same" setting as 110
        mean="pixel",  # "the per-pixel mean subtracted"
        color_jitter=False,
    ),
    "resnet_imagenet": Recipe(
        name="resnet_imagenet",
        section="ResNet Sec. 3.4",
        batch_size=256,  # "mini-batch size of 256"
        lr=0.1,  # "starts from 0.1"
        momentum=0.9,  # "a momentum of 0.9"
        weight_decay=1e-4,
        iterations=600_000,  # "trained for up to 60 x 10^4 iterations"
        schedule="plateau",  # "divided by 10 when the error plateaus"
        mean="pixel",  # "per-pixel mean subtracted"
        scale=(256, 480),  # "shorter side randomly sampled in [256, 480]"
        color_jitter=True,  # "standard color augmentation in [21]"
    ),
    "vgg": Recipe(
        name="vgg",
        section="VGG Sec. 3.1",
        batch_size=256,  # "batch size was set to 256"
        lr=0.01,  # "initially set to 10^-2"
        momentum=0.9,  # "momentum to 0.9"
        weight_decay=5e-4,  # "5 x 10^-4"
        iterations=370_000,  # "stopped after 370K iterations (74 epochs)"
        schedule="plateau",  # "decreased by a factor of 10 when the validation set accuracy stopped improving"
        plateau_max_drops=3,  # "decreased 3 times"
        mean="rgb",  # "subtracting the mean RGB value, computed on the training set"
        scale=(256, 512),  # scale jittering: "S from a certain range [Smin, Smax] (Smin = 256, Smax = 512)"
        color_jitter=True,  # "random RGB colour shift [Krizhevsky et al.]"
    ),
}


def recipe_key(recipe: Recipe) -> dict:
    """The recipe's values as a run's key holds them: fields added after 0.1 only where they differ from their
    defaults, so a key written before a field existed still names the same run."""
    key = dataclasses.asdict(recipe)
    for f in dataclasses.fields(recipe):
        if "since" in f.metadata and key[f.name] == f.default:
            del key[f.name]
    return key


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def field_types() -> dict[str, type]:
    hints = typing.get_type_hints(Recipe)
    return {f.name: hints[f.name] for f in dataclasses.fields(Recipe) if f.name not in ("name", "section")}


def coerce(name: str, value, hint):
    """Turn ``value`` (from JSON, YAML or the command line) into the field's type, or explain why not."""
    origin = typing.get_origin(hint)
    try:
        if origin is Literal:
            if value not in typing.get_args(hint):
                raise ValueError(f"must be one of {', '.join(map(str, typing.get_args(hint)))}")
            return value
        if origin is tuple:
            item = typing.get_args(hint)[0]
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(coerce(name, v, item) for v in value)
        if origin in (typing.Union, types.UnionType):
            return coerce(name, value, next(a for a in typing.get_args(hint) if a is not type(None)))
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError("must be true or false")
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("must be a whole number")
            return int(float(value)) if isinstance(value, str) else int(value)
        return hint(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"recipe field {name}={value!r}: {e}") from None


def override(recipe: Recipe, **changes) -> Recipe:
    """``dataclasses.replace`` with unknown fields and wrong types turned into clear errors."""
    types_ = field_types()
    unknown = sorted(set(changes) - set(types_))
    if unknown:
        raise ValueError(f"unknown recipe field {', '.join(unknown)}; valid fields: {', '.join(types_)}")
    return dataclasses.replace(recipe, **{k: coerce(k, v, types_[k]) for k, v in changes.items()})

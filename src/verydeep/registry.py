"""Model names -> builders, and what each network is. ``create_model`` is the one way the project makes a network;
``get_entry`` is the one place a name is resolved: nothing else looks inside a model's name for its meaning."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

Family = Literal["vgg", "resnet"]


@dataclass(frozen=True)
class Entry:
    """A registered network and the facts the rest of the project needs about it."""

    name: str
    build: Callable[..., nn.Module]
    options: tuple[str, ...]  # what the builder accepts
    family: Family
    depth: int  # weight layers: VGG Table 1's column heads, the number in a ResNet's name
    recipe: str  # the recipe its paper trained it with (recipes.RECIPES)
    input_size: int  # the images it was designed for: 224 (ImageNet) or 32 (CIFAR)
    residual: bool = False  # a ResNet with its shortcuts; plain nets and VGG have none
    torchvision: str | None = None  # torchvision's name for the same network
    aliases: tuple[str, ...] = ()
    variants: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()  # (name, options it implies), vgg16_bn
    paper_name: str = ""  # what its paper calls it: "ResNet-56", "plain-20", VGG's "A", "A-LRN", "B-5x5"

    @property
    def description(self) -> str:
        return (self.build.__doc__ or "").strip().splitlines()[0]


_MODELS: dict[str, Entry] = {}
_ALIASES: dict[str, str] = {}
_IMPLIED: dict[str, dict] = {}  # a variant's name -> the options it stands for, e.g. vgg16_bn -> batch_norm


def register(
    name: str,
    cls: type[nn.Module],
    *,
    family: Family,
    depth: int,
    recipe: str,
    input_size: int,
    residual: bool = False,
    torchvision: str | None = None,
    aliases: tuple[str, ...] = (),
    variants: dict[str, dict] | None = None,
    paper_name: str | None = None,
):
    """Register a builder under ``name``; the options it accepts are ``cls.OPTIONS``. ``aliases`` are other
    names for it (vgg16), ``variants`` names that stand for it with options set (vgg16_bn: batch_norm=True);
    ``paper_name`` what its paper calls it (by default, for a ResNet or plain net, "ResNet-56" or "plain-56")."""
    variants = variants or {}
    if paper_name is None:
        paper_name = f"{'ResNet' if residual else 'plain'}-{depth}" if family == "resnet" else name

    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        frozen = tuple((v, tuple(options.items())) for v, options in variants.items())
        _MODELS[name] = Entry(name, build, cls.OPTIONS, family, depth, recipe, input_size, residual, torchvision,
                              aliases, frozen, paper_name)  # fmt: skip
        _ALIASES.update({alias: name for alias in [*aliases, *variants]})
        _IMPLIED.update({variant: dict(options) for variant, options in variants.items()})
        return build

    return decorator


def list_models() -> list[str]:
    return list(_MODELS)


def entries() -> list[Entry]:
    return list(_MODELS.values())


def aliases() -> dict[str, str]:
    """alias -> the name it stands for, e.g. vgg16 -> vgg_d."""
    return dict(_ALIASES)


def is_registered(name: str) -> bool:
    return _ALIASES.get(name, name) in _MODELS


def get_entry(name: str) -> Entry:
    canonical = _ALIASES.get(name, name)
    if canonical not in _MODELS:
        close = difflib.get_close_matches(name, [*_MODELS, *_ALIASES], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Valid models: {', '.join(_MODELS)} (`verydeep list`)")
    return _MODELS[canonical]


def by_paper_name(paper_name: str) -> Entry:
    """The network its paper calls ``paper_name``: "ResNet-110" is resnet110, VGG's "D" is vgg_d."""
    for entry in _MODELS.values():
        if entry.paper_name == paper_name:
            return entry
    known = ", ".join(e.paper_name for e in _MODELS.values())
    raise ValueError(f"no network is called {paper_name!r} in the papers; known: {known}")


def implied_options(name: str) -> dict:
    """The options a variant's name stands for (vgg16_bn: batch_norm=True); {} for any other name."""
    return dict(_IMPLIED.get(name, {}))


def counterpart(name: str, residual: bool) -> Entry:
    """The same stack with (residual=True) or without its shortcuts: plain56 <-> resnet56 (ResNet Sec. 4.1)."""
    entry = get_entry(name)
    same = (entry.family, entry.depth, entry.recipe)
    for other in _MODELS.values():
        if (other.family, other.depth, other.recipe) == same and other.residual == residual:
            return other
    raise ValueError(f"{entry.name} has no {'residual' if residual else 'plain'} counterpart")


def create_model(name: str, **options) -> nn.Module:
    """Build a registered network with fresh weights (``verydeep.create_model`` also loads weights)."""
    entry = get_entry(name)
    options = {**implied_options(name), **options}
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise ValueError(f"{entry.name} has no option {', '.join(unknown)}; valid options: {', '.join(entry.options)}")
    model = entry.build(**options)
    model.verydeep_name = entry.name
    model.verydeep_options = dict(options)
    return model


def options_for_data(name: str, num_classes: int, in_channels: int, image_size: int) -> dict:
    """The options that fit a network to a data set: its classes and channels, and for VGG below 224 px the
    small-image head sized to the images."""
    options = {"num_classes": num_classes, "in_channels": in_channels}
    if get_entry(name).family == "vgg":
        options.update(head="small" if image_size < 224 else "imagenet", image_size=image_size)
    return options

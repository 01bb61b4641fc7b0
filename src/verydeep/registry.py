"""Model names -> builders. ``create_model`` is the one way the rest of the project makes a network."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[..., nn.Module]
    options: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return (self.build.__doc__ or "").strip().splitlines()[0]


_MODELS: dict[str, Entry] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, cls: type[nn.Module], aliases: tuple[str, ...] = ()):
    """Register a builder under ``name``; the options it accepts are ``cls.OPTIONS``."""

    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = Entry(name, build, cls.OPTIONS, aliases)
        _ALIASES.update({alias: name for alias in aliases})
        return build

    return decorator


def list_models() -> list[str]:
    return list(_MODELS)


def get_entry(name: str) -> Entry:
    canonical = _ALIASES.get(name, name)
    if canonical not in _MODELS:
        close = difflib.get_close_matches(name, [*_MODELS, *_ALIASES], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Valid models: {', '.join(_MODELS)} (`verydeep list`)")
    return _MODELS[canonical]


def create_model(name: str, weights: str | Path | None = None, **options) -> nn.Module:
    """Build a registered network; with ``weights``, load a verydeep safetensors or torchvision file.

    A safetensors file written by verydeep records the options its network was built with; they are used
    unless given here.
    """
    entry = get_entry(name)
    if weights is not None:
        from .weights import load_weights

        return load_weights(weights, entry.name, options)
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
    if get_entry(name).name.startswith("vgg"):
        options.update(head="small" if image_size < 224 else "imagenet", image_size=image_size)
    return options

"""verydeep: VGG and ResNet exactly as published, with the papers' recipes and experiments."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from . import models, registry  # noqa: F401  (models registers the model names)
from .registry import list_models
from .version import __version__

__all__ = ["create_model", "list_models", "load_model", "__version__"]


def create_model(name: str | None = None, weights: str | Path | None = None, **options) -> nn.Module:
    """Build a registered network; with ``weights``, load a verydeep safetensors or torchvision file into it.

    A safetensors file written by verydeep records the options its network was built with; they are used
    unless given here. Given only ``weights``, the network is the one the file holds: its metadata says, or a
    torchvision checkpoint's keys do (``create_model(weights="vgg16_bn-6c64b313.pth")``).
    """
    if weights is None:
        if name is None:
            raise ValueError("create_model needs a model name or a weights file (see verydeep.list_models())")
        return registry.create_model(name, **options)
    from .weights import load_weights

    if name is None:
        return load_weights(weights, None, options)
    return load_weights(weights, registry.get_entry(name).name, {**registry.implied_options(name), **options})


def load_model(path: str | Path, **options) -> nn.Module:
    """Rebuild the network a verydeep safetensors file (or a torchvision checkpoint) was saved from, with its
    weights; ``options`` are given to the builder beside the ones the file records."""
    from .weights import load_weights

    return load_weights(path, None, options)

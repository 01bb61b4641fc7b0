"""verydeep: VGG and ResNet exactly as published, with the papers' recipes and experiments."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from . import models  # noqa: F401  (registers the model names)
from .registry import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_model", "__version__"]


def load_model(path: str | Path, **options) -> nn.Module:
    """Rebuild the network a verydeep safetensors file (or a torchvision checkpoint) was saved from, with its
    weights; ``options`` are given to the builder beside the ones the file records."""
    from .weights import load_weights

    return load_weights(path, None, options)

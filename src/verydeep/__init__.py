"""verydeep: VGG and ResNet exactly as published, with the papers' recipes and experiments."""

from . import models  # noqa: F401  (registers the model names)
from .registry import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "load_model", "__version__"]


def load_model(path, **options):
    """Rebuild the network a verydeep safetensors file was saved from, with its weights."""
    from .weights import load_weights

    return load_weights(path, None, options)

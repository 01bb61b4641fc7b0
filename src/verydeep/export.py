"""Trained networks out to the formats deployment tools read.

onnx         torch.onnx's exporter (built on torch.export), any batch size; onnxruntime, TensorRT, OpenVINO...
torchscript  torch.jit.trace at the trained image size; LibTorch (C++) and older serving stacks. PyTorch no
             longer develops TorchScript, but those tools still load it.
safetensors  the weights with the network's name and options; ``verydeep.load_model`` rebuilds it.

ONNX and TorchScript take what the training loop fed the network: float32 (batch, C, H, W), pixel values
/ 255 minus the training mean (the run's config.json holds it), and give logits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .models.layers import input_channels
from .trained import Trained
from .weights import save_weights

Format = Literal["onnx", "torchscript", "safetensors"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "safetensors")


def input_shape(trained: Trained, image_size: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) of the images the network takes: ``image_size`` if given, else its run's training size, else
    the network's own (the paper's input, or VGG's ``image_size`` option). ONNX keeps only the batch axis free."""
    size = image_size or (trained.preprocessing.image_size if trained.preprocessing else trained.model.image_size)
    return input_channels(trained.model), size, size


def export(model: nn.Module, out: str | Path, format: Format, input_shape: tuple[int, int, int]) -> Path:
    """Write ``model`` to ``out`` in ``format``; ONNX and TorchScript take batches of ``input_shape`` images."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "safetensors":
        return save_weights(model, out)
    model.eval()
    example = torch.zeros(2, *input_shape)  # torch.export would fix a batch axis of size 1 as a constant
    if format == "onnx":
        export_onnx(model, example, out)
    else:
        with warnings.catch_warnings():
            # asked for by name: the deprecation notice would only repeat what the module docstring says
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace")
            torch.jit.trace(model, example).save(str(out))
    return out


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    """One ONNX file ("images" -> "logits") whose batch axis is free. The weights stay inside the file:
    VGG-E's 548 MB is well under protobuf's 2 GB limit."""
    try:
        import onnx  # noqa: F401  (torch.onnx writes the file with it)
        import onnxscript  # noqa: F401  (and translates the graph with it)
    except ImportError as error:
        raise ValueError(
            f"ONNX export needs the onnx and onnxscript packages ({error}): pip install onnx onnxscript"
        ) from error
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    program.save(str(out), external_data=False)

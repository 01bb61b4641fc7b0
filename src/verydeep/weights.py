"""Weights in and out: our safetensors files, run checkpoints, and torchvision's checkpoint files.

Nothing here unpickles arbitrary objects: safetensors holds tensors only, and ``.pth``/``.pt`` files are read
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .models.resnet import IMAGENET_STAGES
from .registry import Entry, create_model, entries, get_entry
from .runs import Checkpoint, atomic_write_bytes, unsafe_pickle


def torchvision_networks() -> tuple[dict[int, Entry], dict[tuple, Entry]]:
    """Our networks that torchvision has too, by what tells them apart in a state dict: a VGG by its number of
    convolutions (all weight layers but the three FC), a ResNet by its blocks per stage and their kind."""
    vgg, resnet = {}, {}
    for entry in entries():
        if entry.torchvision is None:
            continue
        if entry.family == "vgg":
            vgg[entry.depth - 3] = entry
        else:
            block, stages = IMAGENET_STAGES[entry.depth]
            resnet[(*stages, block == "bottleneck")] = entry
    return vgg, resnet


def model_spec(model: nn.Module) -> tuple[str, dict]:
    name = getattr(model, "verydeep_name", None)
    if name is None:
        raise ValueError("this model was not built by verydeep.create_model, so its name and options are unknown")
    return name, dict(model.verydeep_options)


def save_weights(model: nn.Module, path: str | Path, spec: tuple[str, dict] | None = None, **metadata: str) -> Path:
    """Write the weights with the model's name and options in the file's metadata (``spec``: those of a network
    not built by ``create_model``)."""
    name, options = spec or model_spec(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"verydeep.model": name, "verydeep.options": json.dumps(options), **metadata}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=meta))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def load_weights(path: str | Path, name: str | None = None, options: dict | None = None) -> nn.Module:
    """Build the network stored in ``path`` and load it; ``name`` (if given) must match the file's network."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    options = dict(options or {})
    if path.suffix == ".safetensors":
        return _load_safetensors(path, name, options)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if unsafe := unsafe_pickle(path, e):
            raise unsafe from None
        raise ValueError(f"{path} is not a readable weights file ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "verydeep" in obj:  # a run's checkpoint.pt
        checkpoint = Checkpoint.from_dict(obj)
        options = {**checkpoint.options, **options}
        return _build_and_load(path, checkpoint.model_name, options, checkpoint.model, name)
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _load_torchvision(path, obj, name, options)
    raise ValueError(f"{path} holds neither a state dict nor a verydeep checkpoint")


def _load_safetensors(path: Path, name: str | None, options: dict) -> nn.Module:
    meta = read_metadata(path)
    stored = meta.get("verydeep.model")
    state = load_file(path)
    if stored is None:
        if name is None:
            raise ValueError(f"{path} carries no model name in its metadata; pass the model name")
        return _build_and_load(path, name, options, state, None)
    stored_options = json.loads(meta.get("verydeep.options", "{}"))
    return _build_and_load(path, stored, {**stored_options, **options}, state, name)


def _build_and_load(path: Path, stored: str, options: dict, state: dict, requested: str | None) -> nn.Module:
    if requested is not None and get_entry(requested).name != get_entry(stored).name:
        raise ValueError(f"{path} holds weights for {stored}, not for the requested model {requested}")
    return _load_state(stored, options, state, path, stored)


def _load_state(name: str, options: dict, state: dict, path: Path, described_as: str) -> nn.Module:
    """Build ``name`` without initialising it (on the meta device) and adopt the file's tensors."""
    with torch.device("meta"):
        model = create_model(name, **options)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
                f"shape of {wrong[0]}: file {tuple(state[wrong[0]].shape)}, model {tuple(own[wrong[0]].shape)}"
                if wrong
                else "",
            )
            if part
        )
        raise ValueError(
            f"{path} holds weights for {described_as}, which do not fit {model.verydeep_name} "
            f"with options {model.verydeep_options} ({detail})"
        )
    model.load_state_dict(state, assign=True)
    return model


def identify_torchvision(state: dict[str, torch.Tensor]) -> str:
    """torchvision's name for the network a state dict belongs to, e.g. 'resnet50' or 'vgg16_bn'."""
    vgg, resnet = torchvision_networks()
    if "features.0.weight" in state:
        convs = [k for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4]
        bn = any(k.endswith("running_mean") for k in state)
        if len(convs) not in vgg:
            raise ValueError(f"a VGG-like state dict with {len(convs)} convolutions matches no torchvision VGG")
        return vgg[len(convs)].torchvision + ("_bn" if bn else "")
    if "conv1.weight" in state and "fc.weight" in state:
        blocks = []
        for stage in range(1, 5):
            indices = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
            blocks.append(len(indices))
        key = (*blocks, "layer1.0.conv3.weight" in state)
        if key in resnet:
            return resnet[key].torchvision
    raise ValueError("this state dict matches none of torchvision's vgg11/13/16/19(_bn) or resnet18/34/50/101/152")


def _load_torchvision(path: Path, state: dict, requested: str | None, options: dict) -> nn.Module:
    tv_name = identify_torchvision(state)
    entry = next(e for e in entries() if e.torchvision == tv_name.removesuffix("_bn"))
    ours = entry.name
    if entry.family == "vgg":
        options.setdefault("batch_norm", tv_name.endswith("_bn"))
        options.setdefault("num_classes", state["classifier.6.weight"].shape[0])
        options.setdefault("in_channels", state["features.0.weight"].shape[1])
    else:
        state = {k.replace(".downsample.", ".shortcut."): v for k, v in state.items()}
        options.setdefault("num_classes", state["fc.weight"].shape[0])
        options.setdefault("in_channels", state["conv1.weight"].shape[1])
        if "layer1.0.conv3.weight" in state:
            # torchvision's ResNet-50 and deeper are "v1.5": the stride sits in the 3x3.
            options.setdefault("stride_at", "3x3")
    if requested is not None and get_entry(requested).name != ours:
        raise ValueError(
            f"{path} holds torchvision's {tv_name} (our {ours}), not the requested model {get_entry(requested).name}"
        )
    return _load_state(ours, options, state, path, f"torchvision's {tv_name}")

"""Layer tables, parameter and multiply-add counts, and the papers' figures beside ours.

Multiply-adds are counted by ``torch.utils.flop_counter`` on a real forward pass (one multiply-add = two
FLOPs there), never kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import paper
from .models.layers import input_channels
from .registry import counterpart, create_model


def input_shape(model: nn.Module, image_size: int | None = None) -> tuple[int, int, int, int]:
    """One image of the model's input size (its paper's, unless ``image_size`` is given)."""
    return (1, input_channels(model), image_size or model.image_size, image_size or model.image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int | None = None) -> int:
    """Multiply-adds of one forward pass on one image (shapes only: works on the meta device too)."""
    device = next(model.parameters()).device
    x = torch.zeros(input_shape(model, image_size), device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2


def meta_model(name: str, **options) -> nn.Module:
    """A network with shapes but no storage: counting its parameters and multiply-adds costs nothing."""
    with torch.device("meta"):
        return create_model(name, **options)


HIDDEN = (nn.ReLU, nn.Dropout, nn.Identity)  # shape-preserving; left out of the layer table


@dataclass
class LayerRow:
    name: str
    kind: str
    output: tuple[int, ...]
    params: int
    macs: int


def layer_table(model: nn.Module, image_size: int | None = None) -> list[LayerRow]:
    """One row per leaf module in execution order, with its output shape, parameters and multiply-adds."""
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None and name:

            def hook(mod, args, out, name=name):
                if name not in shapes:
                    order.append(name)
                shapes[name] = tuple(out.shape)

            hooks.append(module.register_forward_hook(hook))
    x = torch.zeros(input_shape(model, image_size), device=next(model.parameters()).device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    flops = counter.get_flop_counts()
    modules = dict(model.named_modules())
    rows = []
    prefix = type(model).__name__ + "."
    for name in order:
        module = modules[name]
        if isinstance(module, HIDDEN):
            continue
        macs = sum(flops.get(prefix + name, {}).values()) // 2
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(name, type(module).__name__, shapes[name], params, macs))
    return rows


def format_layer_table(model_name: str, model: nn.Module, image_size: int | None = None) -> str:
    rows = layer_table(model, image_size)
    shape = input_shape(model, image_size)
    lines = [f"{model_name}: input {tuple(shape[1:])}", ""]
    lines.append(f"{'layer':<28} {'type':<18} {'output':<20} {'params':>12} {'mult-adds':>15}")
    lines.append("-" * 97)
    for r in rows:
        out = "x".join(str(d) for d in r.output[1:])
        lines.append(f"{r.name:<28} {r.kind:<18} {out:<20} {r.params:>12,} {r.macs:>15,}")
    lines.append("-" * 97)
    total_params, total_macs = count_parameters(model), count_macs(model, image_size)
    lines.append(f"{'total':<68} {total_params:>12,} {total_macs:>15,}")
    lines.append(f"{total_params / 1e6:.2f}M parameters, {total_macs / 1e9:.3f} G multiply-adds per image")
    return "\n".join(lines)


@dataclass
class PaperRow:
    source: str
    item: str
    paper: str
    ours: str
    agrees: bool


def paper_rows() -> list[PaperRow]:
    """Every structural figure of the papers recomputed from our networks."""
    rows = []
    for name, millions in paper.VGG_TABLE2_PARAMS_M.items():
        n, exact = count_parameters(meta_model(name)), paper.VGG_EXACT_PARAMS.get(name)
        published = f"{millions}M" + (f" ({exact:,})" if exact else "")
        agrees = round(n / 1e6) == millions and n == (exact or n)
        rows.append(PaperRow("VGG Table 2", f"{name} parameters", published, f"{n:,}", agrees))
    for name, gmacs in paper.RESNET_TABLE1_GMACS.items():
        macs = count_macs(meta_model(name)) / 1e9
        rows.append(
            PaperRow("ResNet Table 1", f"{name} mult-adds", f"{gmacs}e9", f"{macs:.2f}e9", abs(macs / gmacs - 1) < 0.05)
        )
    tv50 = count_macs(meta_model("resnet50", stride_at="3x3")) / 1e9
    rows.append(
        PaperRow("ResNet Table 1", "resnet50 stride_at=3x3 (torchvision v1.5)", "~4.1e9", f"{tv50:.2f}e9", True)
    )
    for name, (millions, _) in paper.CIFAR_TABLE6.items():
        n = count_parameters(meta_model(name, num_classes=10))
        plain = count_parameters(meta_model(counterpart(name, residual=False).name, num_classes=10))
        digits = 2 if millions < 1 else 1
        rows.append(
            PaperRow(
                "ResNet Table 6",
                f"{name} parameters (plain: {plain:,})",
                f"{millions}M",
                f"{n:,}",
                round(n / 1e6, digits) == millions and plain == n,
            )
        )
    for channels in (64, 512):
        three = sum(count_parameters(nn.Conv2d(channels, channels, 3, bias=False)) for _ in range(3))
        seven = count_parameters(nn.Conv2d(channels, channels, 7, bias=False))
        rows.append(
            PaperRow(
                "VGG Sec. 2.3",
                f"three 3x3 vs one 7x7, C={channels}",
                "27C^2 vs 49C^2",
                f"{three:,} vs {seven:,}",
                three == 27 * channels**2 and seven == 49 * channels**2,
            )
        )
    return rows


def format_paper_table(rows: list[PaperRow]) -> str:
    lines = [f"{'source':<16} {'figure':<48} {'paper':>15} {'ours':>16}  agrees", "-" * 106]
    for r in rows:
        lines.append(f"{r.source:<16} {r.item:<48} {r.paper:>15} {r.ours:>16}  {'yes' if r.agrees else 'NO'}")
    return "\n".join(lines)

"""ResNets and their plain counterparts (He et al., Table 1 and Sec. 4.2).

A plain network is the same stack with the shortcuts removed: ``residual=False`` is the only difference,
so plainN and resnetN with option A have exactly the same parameters (Sec. 3.3).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..registry import register
from .layers import SHORTCUT_OPTIONS, Shortcut, conv1x1, conv3x3, make_shortcut, norm_relu

StrideAt = Literal["1x1", "3x3"]

# Table 1: depth -> (building block, blocks in conv2_x, conv3_x, conv4_x, conv5_x)
IMAGENET_STAGES: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)  # conv2_x ... conv5_x (bottleneck outputs are 4x these)

# Sec. 4.2: 6n+2 layers, 2n on each of the maps {32, 16, 8} with {16, 32, 64} filters.
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS = (16, 32, 64)


def cifar_stages(depth: int) -> tuple[str, tuple[int, ...]]:
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"a CIFAR ResNet has 6n+2 layers ({', '.join(map(str, CIFAR_DEPTHS))}, ...), not {depth}")
    n = (depth - 2) // 6
    return "basic", (n, n, n)


class BasicBlock(nn.Module):
    """Two 3x3 convs (Fig. 5 left). Subsampling, where any, is the first conv's stride 2."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        shortcut: Shortcut | None = "A",
    ):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = None if shortcut is None else make_shortcut(shortcut, in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = None if self.shortcut is None else self.shortcut(x)
        out = norm_relu(self.bn1, self.conv1(x))
        return norm_relu(self.bn2, self.conv2(out), residual)


class Bottleneck(nn.Module):
    """1x1, 3x3, 1x1 with 4x the width out (Fig. 5 right)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        shortcut: Shortcut | None = "B",
        stride_at: StrideAt = "1x1",
    ):
        super().__init__()
        out_channels = width * self.expansion
        # paper (Sec. 3.3, "performed by convolutions with a stride of 2"): its Caffe models subsample in
        # the first 1x1; torchvision's "v1.5" moves the stride to the 3x3 (stride_at="3x3").
        self.conv1 = conv1x1(in_channels, width, stride if stride_at == "1x1" else 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride if stride_at == "3x3" else 1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = None if shortcut is None else make_shortcut(shortcut, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = None if self.shortcut is None else self.shortcut(x)
        out = norm_relu(self.bn1, self.conv1(x))
        out = norm_relu(self.bn2, self.conv2(out))
        return norm_relu(self.bn3, self.conv3(out), residual)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A residual (or, with ``residual=False``, plain) network.

    stem="imagenet": conv1 7x7/2 with 64 filters and a 3x3/2 max-pool (Table 1).
    stem="cifar": one 3x3 conv with ``widths[0]`` filters (Sec. 4.2).
    Each following stage doubles the filters and halves the map with stride 2 in its first block.
    """

    OPTIONS = ("num_classes", "in_channels", "shortcut", "stride_at", "zero_init_residual")

    def __init__(
        self,
        block: str,
        blocks_per_stage: tuple[int, ...],
        widths: tuple[int, ...],
        stem: Literal["imagenet", "cifar"],
        num_classes: int = 1000,
        in_channels: int = 3,
        residual: bool = True,
        shortcut: Shortcut = "B",
        stride_at: StrideAt = "1x1",
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"unknown shortcut option {shortcut!r}; valid options are 'A', 'B' and 'C'")
        if stride_at not in ("1x1", "3x3"):
            raise ValueError(f"stride_at must be '1x1' (the paper) or '3x3' (torchvision's v1.5), not {stride_at!r}")
        if block == "basic" and stride_at != "1x1":
            raise ValueError(
                "stride_at='3x3' concerns bottleneck blocks (ResNet-50 and deeper): a basic block's only stride "
                "already sits in its first 3x3; leave stride_at out for this network"
            )
        if zero_init_residual and not residual:
            raise ValueError("zero_init_residual needs shortcuts: a plain network would output zeros")
        self.residual, self.shortcut, self.stride_at = residual, shortcut, stride_at
        self.image_size = 224 if stem == "imagenet" else 32  # the paper's input size, for summaries
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(in_channels, widths[0])
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(widths[0])

        Block = BLOCKS[block]
        channels = widths[0]
        self.stages = []
        for i, (count, width) in enumerate(zip(blocks_per_stage, widths)):
            layers = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                more = {"stride_at": stride_at} if Block is Bottleneck else {}
                layers.append(Block(channels, width, stride, shortcut if residual else None, **more))
                channels = width * Block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.stages.append(f"layer{i + 1}")
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He et al. 2015 init, as Sec. 3.4 says; fan_out as fb.resnet.torch and torchvision.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2
                    nn.init.zeros_(last_bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(norm_relu(self.bn1, self.conv1(x)))
        for name in self.stages:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # global average pooling as a mean: the same numbers as AdaptiveAvgPool2d(1), with a deterministic
        # backward on CUDA
        return self.fc(self.forward_features(x).mean((2, 3)))


def imagenet_resnet(depth: int, residual: bool = True, **options) -> ResNet:
    """Table 1's network of this depth; option B shortcuts by default (Table 3's ResNet-50/101/152)."""
    check_plain_options(residual, options)
    block, stages = IMAGENET_STAGES[depth]
    return ResNet(block, stages, IMAGENET_WIDTHS, "imagenet", residual=residual, **options)


def cifar_resnet(depth: int, residual: bool = True, **options) -> ResNet:
    """Sec. 4.2's 6n+2-layer network; option A shortcuts by default ("identity shortcuts in all cases") and
    CIFAR-10's 10 classes, so that the parameters are Table 6's (0.27M for ResNet-20)."""
    check_plain_options(residual, options)
    block, stages = cifar_stages(depth)
    options.setdefault("shortcut", "A")
    options.setdefault("num_classes", 10)
    return ResNet(block, stages, CIFAR_WIDTHS, "cifar", residual=residual, **options)


def check_plain_options(residual: bool, options: dict) -> None:
    if not residual and "shortcut" in options:
        raise ValueError("plain networks have no shortcuts, so no shortcut option; use a resnet name for one")


IMAGENET = dict(family="resnet", recipe="resnet_imagenet", input_size=224)
CIFAR = dict(family="resnet", recipe="resnet_cifar", input_size=32)


# ImageNet networks (Table 1; FLOPs are multiply-adds at 224x224).
@register("resnet18", ResNet, **IMAGENET, depth=18, residual=True, torchvision="resnet18")
def resnet18(**options) -> ResNet:
    """ResNet-18, basic blocks 2-2-2-2 (Table 1: 1.8 GFLOPs)."""
    return imagenet_resnet(18, **options)


@register("resnet34", ResNet, **IMAGENET, depth=34, residual=True, torchvision="resnet34")
def resnet34(**options) -> ResNet:
    """ResNet-34, basic blocks 3-4-6-3 (3.6 GFLOPs)."""
    return imagenet_resnet(34, **options)


@register("resnet50", ResNet, **IMAGENET, depth=50, residual=True, torchvision="resnet50")
def resnet50(**options) -> ResNet:
    """ResNet-50, bottlenecks 3-4-6-3 (3.8 GFLOPs)."""
    return imagenet_resnet(50, **options)


@register("resnet101", ResNet, **IMAGENET, depth=101, residual=True, torchvision="resnet101")
def resnet101(**options) -> ResNet:
    """ResNet-101, bottlenecks 3-4-23-3 (7.6 GFLOPs)."""
    return imagenet_resnet(101, **options)


@register("resnet152", ResNet, **IMAGENET, depth=152, residual=True, torchvision="resnet152")
def resnet152(**options) -> ResNet:
    """ResNet-152, bottlenecks 3-8-36-3 (11.3 GFLOPs)."""
    return imagenet_resnet(152, **options)


@register("plain18", ResNet, **IMAGENET, depth=18, residual=False)
def plain18(**options) -> ResNet:
    """Plain-18: ResNet-18 without shortcuts (Table 2: 27.94% top-1 error)."""
    return imagenet_resnet(18, residual=False, **options)


@register("plain34", ResNet, **IMAGENET, depth=34, residual=False)
def plain34(**options) -> ResNet:
    """Plain-34: ResNet-34 without shortcuts (Table 2: 28.54%, worse than plain-18)."""
    return imagenet_resnet(34, residual=False, **options)


@register("plain50", ResNet, **IMAGENET, depth=50, residual=False)
def plain50(**options) -> ResNet:
    """Plain-50: ResNet-50's bottleneck stack without shortcuts."""
    return imagenet_resnet(50, residual=False, **options)


@register("plain101", ResNet, **IMAGENET, depth=101, residual=False)
def plain101(**options) -> ResNet:
    """Plain-101: ResNet-101's bottleneck stack without shortcuts."""
    return imagenet_resnet(101, residual=False, **options)


@register("plain152", ResNet, **IMAGENET, depth=152, residual=False)
def plain152(**options) -> ResNet:
    """Plain-152: ResNet-152's bottleneck stack without shortcuts."""
    return imagenet_resnet(152, residual=False, **options)


# CIFAR networks (Sec. 4.2, Table 6: parameters and CIFAR-10 test error).
@register("resnet20", ResNet, **CIFAR, depth=20, residual=True)
def resnet20(**options) -> ResNet:
    """CIFAR ResNet-20, n=3 (Table 6: 0.27M parameters, 8.75% error)."""
    return cifar_resnet(20, **options)


@register("resnet32", ResNet, **CIFAR, depth=32, residual=True)
def resnet32(**options) -> ResNet:
    """CIFAR ResNet-32, n=5 (0.46M, 7.51%)."""
    return cifar_resnet(32, **options)


@register("resnet44", ResNet, **CIFAR, depth=44, residual=True)
def resnet44(**options) -> ResNet:
    """CIFAR ResNet-44, n=7 (0.66M, 7.17%)."""
    return cifar_resnet(44, **options)


@register("resnet56", ResNet, **CIFAR, depth=56, residual=True)
def resnet56(**options) -> ResNet:
    """CIFAR ResNet-56, n=9 (0.85M, 6.97%)."""
    return cifar_resnet(56, **options)


@register("resnet110", ResNet, **CIFAR, depth=110, residual=True)
def resnet110(**options) -> ResNet:
    """CIFAR ResNet-110, n=18 (1.7M, 6.43%); trained with a warm-up (Sec. 4.2)."""
    return cifar_resnet(110, **options)


@register("resnet1202", ResNet, **CIFAR, depth=1202, residual=True)
def resnet1202(**options) -> ResNet:
    """CIFAR ResNet-1202, n=200 (19.4M, 7.93%)."""
    return cifar_resnet(1202, **options)


@register("plain20", ResNet, **CIFAR, depth=20, residual=False)
def plain20(**options) -> ResNet:
    """CIFAR plain-20: ResNet-20 without shortcuts (Fig. 6)."""
    return cifar_resnet(20, residual=False, **options)


@register("plain32", ResNet, **CIFAR, depth=32, residual=False)
def plain32(**options) -> ResNet:
    """CIFAR plain-32 (Fig. 6)."""
    return cifar_resnet(32, residual=False, **options)


@register("plain44", ResNet, **CIFAR, depth=44, residual=False)
def plain44(**options) -> ResNet:
    """CIFAR plain-44 (Fig. 6)."""
    return cifar_resnet(44, residual=False, **options)


@register("plain56", ResNet, **CIFAR, depth=56, residual=False)
def plain56(**options) -> ResNet:
    """CIFAR plain-56: deeper than plain-20 and worse (Fig. 6, the degradation problem)."""
    return cifar_resnet(56, residual=False, **options)


@register("plain110", ResNet, **CIFAR, depth=110, residual=False)
def plain110(**options) -> ResNet:
    """CIFAR plain-110 (Fig. 6: its error stays above 60%, off the plot)."""
    return cifar_resnet(110, residual=False, **options)


@register("plain1202", ResNet, **CIFAR, depth=1202, residual=False)
def plain1202(**options) -> ResNet:
    """CIFAR plain-1202."""
    return cifar_resnet(1202, residual=False, **options)

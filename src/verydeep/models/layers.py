"""Building blocks shared by the VGG and ResNet definitions."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

Shortcut = Literal["A", "B", "C"]
SHORTCUT_OPTIONS: tuple[str, ...] = get_args(Shortcut)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)


def norm_relu(bn: nn.BatchNorm2d, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """ReLU(BN(x) + residual), the end of every ResNet layer (Fig. 2), with ``residual`` None where there is none."""
    y = bn(x)
    return F.relu(y if residual is None else y + residual, inplace=True)


def alexnet_lrn() -> nn.LocalResponseNorm:
    """Local response normalisation "as in Krizhevsky et al." (VGG Sec. 2.1, config A-LRN).

    AlexNet writes b = a / (k + alpha * sum(a^2))^beta with k=2, n=5, alpha=1e-4, beta=0.75.
    ``nn.LocalResponseNorm`` divides alpha by the window size n, so AlexNet's alpha is passed as
    alpha * n = 5e-4 to get AlexNet's normalisation exactly.
    """
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    return nn.LocalResponseNorm(size=n, alpha=alpha * n, beta=beta, k=k)


class ZeroPadShortcut(nn.Module):
    """Option A (ResNet Sec. 3.3): identity with extra channels zero-padded; no parameters.

    Where the block subsamples, the identity takes every ``stride``-th pixel, as the paper's
    CIFAR nets do.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A can only add channels, not go from {in_channels} to {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Eq. 2's W_s: a 1x1 convolution (stride as the block's) followed by BN."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def make_shortcut(option: Shortcut, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of one residual block under option A, B or C (ResNet Sec. 3.3 and Table 3).

    A: identity, zero-padded where dimensions increase (no parameters).
    B: projection where dimensions change, identity elsewhere.
    C: projection on every shortcut.
    """
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; valid options are 'A', 'B' and 'C'")
    changes = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes):
        return projection(in_channels, out_channels, stride)
    if option == "A" and changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()


def input_channels(model: nn.Module) -> int | None:
    """The channels of the images a network takes: its first convolution's inputs (None without one)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else first.in_channels


def output_classes(model: nn.Module) -> int | None:
    """The classes a network scores: its last linear layer's outputs (None without one)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None

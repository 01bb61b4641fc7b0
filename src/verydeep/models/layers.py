"""Building blocks shared by the VGG and ResNet definitions."""

from __future__ import annotations

import functools
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


def _bn_add_relu(x, weight, bias, mean, var, momentum: float, eps: float, residual):
    y = F.batch_norm(x, mean, var, weight, bias, True, momentum, eps)
    return torch.relu(y if residual is None else y + residual)


@functools.cache
def _fused_bn_add_relu():
    # compiled on first use: one kernel each way per shape instead of BN, the addition and ReLU apart
    return torch.compile(_bn_add_relu, dynamic=False)


def norm_relu(bn: nn.BatchNorm2d, x: torch.Tensor, residual: torch.Tensor | None = None, fused: bool = False):
    """ReLU(BN(x) + residual), the end of every ResNet layer (Fig. 2), with ``residual`` None where there is none.

    ``fused`` compiles BN, the addition and ReLU of a training step into one region (forward and backward) with
    torch.compile; evaluation, subclasses of BN (SyncBatchNorm's statistics over processes) and BN without running
    statistics or with a cumulative average run eagerly.
    Either way the numbers are BN's: the same outputs, gradients and running statistics.
    """
    if fused and type(bn) is nn.BatchNorm2d and bn.training and bn.track_running_stats and bn.momentum is not None:
        bn.num_batches_tracked.add_(1)  # as BatchNorm2d.forward counts; its momentum leaves the count unused
        kernel = _fused_bn_add_relu()
        return kernel(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps, residual)
    y = bn(x)
    return F.relu(y if residual is None else y + residual, inplace=True)


def fuse_normalisation(model: nn.Module, fused: bool = True) -> int:
    """Switch every layer of ``model`` that ends in BN and ReLU to the fused path of ``norm_relu`` (or back);
    returns how many modules were switched (0 for a network without such layers, VGG's)."""
    switched = [m for m in model.modules() if hasattr(m, "fused_norm")]
    for m in switched:
        m.fused_norm = fused
    return len(switched)


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

"""Evaluation: loss, top-1 and top-5 error over a split (the 'center' protocol)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .device import Distributed, autocast


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
    dist: Distributed | None = None,
) -> dict[str, float]:
    """Mean loss and top-1 / top-5 error (fractions) of ``model`` over ``batches``, summed over all ranks."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 wrong, top-5 wrong, count
    for x, y in batches:
        with autocast(device, precision):
            logits = model(x)
        totals += summarise(logits.float(), y)
    if dist is not None:
        dist.all_reduce_sum(totals)
    model.train(was_training)
    loss, wrong1, wrong5, count = totals.tolist()
    if count == 0:
        raise ValueError("nothing to evaluate: the split is empty")
    return {"loss": loss / count, "error": wrong1 / count, "top5_error": wrong5 / count, "images": int(count)}


def summarise(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(summed loss, top-1 mistakes, top-5 mistakes, count) of one batch, without leaving the device."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit5 = (top == y[:, None]).any(1)
    return torch.stack(
        [
            F.cross_entropy(logits, y, reduction="sum").double(),
            (top[:, 0] != y).sum().double(),
            (~hit5).sum().double(),
            torch.tensor(float(len(y)), dtype=torch.float64, device=logits.device),
        ]
    )

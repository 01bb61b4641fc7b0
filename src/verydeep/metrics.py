"""What is counted of a network's answers: summed loss, top-1 and top-5 mistakes and images, kept on the device
until read. The training loop's evaluation (one view per image) and the papers' protocols both count this way."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .device import Distributed, autocast
from .runs import EvalResult


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


class Tally:
    """``summarise`` summed over batches (and, given a ``Distributed``, over ranks), read once at the end."""

    def __init__(self, device: torch.device):
        self.totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 wrong, top-5 wrong, count

    def add(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.totals += summarise(logits, y)

    def result(self, empty: str, dist: Distributed | None = None) -> EvalResult:
        """Mean loss, top-1 and top-5 error (fractions) and images; ``empty`` is the error when nothing was
        counted."""
        if dist is not None:
            dist.all_reduce_sum(self.totals)
        loss, wrong1, wrong5, count = self.totals.tolist()
        if count == 0:
            raise ValueError(empty)
        return EvalResult(loss / count, wrong1 / count, wrong5 / count, int(count))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
    dist: Distributed | None = None,
) -> EvalResult:
    """Mean loss and top-1 / top-5 error (fractions) of ``model`` over ``batches``, summed over all ranks."""
    was_training = model.training
    model.eval()
    tally = Tally(device)
    try:
        for x, y in batches:
            with autocast(device, precision):
                logits = model(x)
            tally.add(logits.float(), y)
    finally:
        model.train(was_training)
    return tally.result("nothing to evaluate: the split is empty", dist)

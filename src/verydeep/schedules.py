"""Learning-rate schedules as pure functions of the step and what training has observed so far.

The training loop reports observations (the training error of each logged window, the validation error of
each epoch) to :class:`LRSchedule`; the rate for a step is then a pure function of the step and that record.
The ResNet-110 warm-up lives here, not in the loop: "0.01 until the training error is below 80%, then back
to 0.1" (ResNet Sec. 4.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .recipes import Recipe


def step_lr(step: int, base_lr: float, milestones: Sequence[int], factor: float = 0.1) -> float:
    """``base_lr`` times ``factor`` for every milestone already reached."""
    return base_lr * factor ** sum(step >= m for m in milestones)


def cosine_lr(step: int, base_lr: float, total_steps: int) -> float:
    """Half a cosine from ``base_lr`` down to zero over the run."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def plateau_drops(val_errors: Sequence[float], patience: int, max_drops: int, threshold: float = 1e-4) -> int:
    """How many times the rate has been divided after these epochs' validation errors.

    A drop happens once ``patience`` epochs in a row fail to beat the best error by ``threshold``; counting
    restarts after each drop (VGG Sec. 3.1: "decreased by a factor of 10 when the validation set accuracy
    stopped improving").
    """
    drops, best, stale = 0, math.inf, 0
    for error in val_errors:
        if error < best - threshold:
            best, stale = error, 0
        else:
            stale += 1
        if stale >= patience and drops < max_drops:
            drops, stale = drops + 1, 0
    return drops


def plateau_lr(base_lr: float, val_errors: Sequence[float], patience: int, max_drops: int, factor: float) -> float:
    return base_lr * factor ** plateau_drops(val_errors, patience, max_drops)


@dataclass
class LRSchedule:
    """A recipe's schedule over one run of ``total_steps`` steps, with what it has observed."""

    recipe: Recipe
    total_steps: int
    warmup: bool = False
    val_errors: list[float] = field(default_factory=list)
    warmup_ended_at: int | None = None  # first step after the training error fell below the threshold

    def lr(self, step: int) -> float:
        r = self.recipe
        if self.warmup and (self.warmup_ended_at is None or step < self.warmup_ended_at):
            return r.warmup_lr
        if r.schedule == "step":
            return step_lr(step, r.lr, r.milestone_steps(self.total_steps), r.lr_factor)
        if r.schedule == "cosine":
            return cosine_lr(step, r.lr, self.total_steps)
        return plateau_lr(r.lr, self.val_errors, r.plateau_patience, r.plateau_max_drops, r.lr_factor)

    def observe_train_error(self, step: int, error: float) -> None:
        """Training error of the window that ended at ``step`` (steps are counted from 0)."""
        if self.warmup and self.warmup_ended_at is None and error < self.recipe.warmup_until_error:
            self.warmup_ended_at = step + 1

    def observe_val_error(self, error: float) -> None:
        self.val_errors.append(error)

    def state_dict(self) -> dict:
        return {"val_errors": list(self.val_errors), "warmup_ended_at": self.warmup_ended_at,
                "total_steps": self.total_steps}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Continue a run's schedule: its milestones stay where the run placed them, so a run extended to a new
        end trains its extra steps at the final learning rate instead of jumping back to a larger one."""
        self.val_errors = list(state["val_errors"])
        self.warmup_ended_at = state["warmup_ended_at"]
        self.total_steps = state.get("total_steps", self.total_steps)


def make_schedule(recipe: Recipe, total_steps: int, model: str) -> LRSchedule:
    if recipe.schedule == "step" and not recipe.milestones:
        raise ValueError(f"the {recipe.name} recipe has no milestones for a step schedule; give --milestones 0.5,0.75")
    warmup = recipe.warmup_lr > 0 and model in recipe.warmup_for
    return LRSchedule(recipe, total_steps, warmup=warmup)

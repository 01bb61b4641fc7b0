"""The training loop on a terminal: a progress bar (tqdm) where there is one, plain log lines elsewhere."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from .runs import MetricsRow


class Progress:
    """A tqdm bar on a terminal; plain log lines otherwise (files, CI, notebooks' captured output)."""

    def __init__(self, total: int, initial: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.bar = tqdm(total=total, initial=initial, file=self.stream, dynamic_ncols=True) if self.tty else None
        self.total = total
        self.t0, self.s0 = time.perf_counter(), initial

    def update(self, step: int, info: MetricsRow) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(
                loss=f"{info.train_loss:.3f}",
                err=f"{100 * info.train_error:.1f}%",
                lr=f"{info.lr:.3g}",
                img_s=f"{info.images_per_second:.0f}",
                refresh=True,
            )
        elif self.enabled:
            done = step - self.s0
            rate = done / max(time.perf_counter() - self.t0, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            self.write(
                f"step {step}/{self.total} epoch {info.epoch:.2f} lr {info.lr:.3g} "
                f"loss {info.train_loss:.4f} error {100 * info.train_error:.2f}% "
                f"{info.images_per_second:.0f} img/s ETA {format_seconds(eta)}"
            )

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

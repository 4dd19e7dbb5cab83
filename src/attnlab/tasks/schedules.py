"""Learning-rate schedules with linear warm-up.

``task.scheduler`` in the config is a partial of :func:`warmup_schedule`; a task calls it with its
optimizer and the run's total number of steps.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SCHEDULES = ("inverse_sqrt", "cosine", "constant")


def lr_multiplier(name: str, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    if name not in SCHEDULES:
        raise ValueError(f"task.scheduler.name must be one of {', '.join(SCHEDULES)}; got {name!r}")
    warmup = max(1, warmup_steps)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "inverse_sqrt":
            return math.sqrt(warmup / (step + 1))
        if name == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return multiplier


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    name: str = "inverse_sqrt",
    warmup_steps: int = 200,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then ``name``: inverse square root (Vaswani et al.
    2017), cosine decay to ``min_ratio`` x the peak at ``total_steps``, or constant."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(name, warmup_steps, total_steps, min_ratio))

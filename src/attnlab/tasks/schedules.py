"""Learning-rate schedules with linear warm-up, as multipliers for LambdaLR."""

from __future__ import annotations

import math
from typing import Callable

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

"""Pruning curves (Michel et al. 2019, section 4.2): the task's metric as heads are switched off in
ascending order of importance, against random orders, and per kind of attention.

The metric is the task's own evaluation of the split (BLEU with greedy decoding for translation,
accuracy, loss), run as eval.py runs it; heads are switched off with their gates (no weights
change), all kinds ranked together on the per-layer normalised importance, as in the paper.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from attnlab.heads.gates import HeadMask

Head = Tuple[str, int, int]  # (kind, layer, head)
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))  # 0, 10, ..., 90 %
KIND_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of one kind's heads, the others all kept


def all_heads(importance: Dict[str, np.ndarray]) -> List[Head]:
    return [(kind, layer, head) for kind, grid in importance.items() for layer in range(grid.shape[0]) for head in range(grid.shape[1])]


def by_importance(importance: Dict[str, np.ndarray], kinds: Optional[Sequence[str]] = None) -> List[Head]:
    """Heads in ascending order of importance (ties: in model order)."""
    heads = [h for h in all_heads(importance) if kinds is None or h[0] in kinds]
    return sorted(heads, key=lambda h: float(importance[h[0]][h[1], h[2]]))


def random_order(importance: Dict[str, np.ndarray], seed: int) -> List[Head]:
    heads = all_heads(importance)
    random.Random(seed).shuffle(heads)
    return heads


def mask_without(shapes: Dict[str, Tuple[int, int]], removed: Sequence[Head]) -> HeadMask:
    gates = {kind: torch.ones(*shape) for kind, shape in shapes.items()}
    for kind, layer, head in removed:
        gates[kind][layer, head] = 0.0
    return gates


def count_at(fraction: float, total: int) -> int:
    return int(round(fraction * total))


@dataclass
class Metric:
    """The metric a curve follows: its key in the evaluation (``bleu``), which way is better, and
    the tolerance of "no loss" in its own units (1 BLEU point; 1 accuracy point = 0.01)."""

    name: str
    higher_is_better: bool
    tolerance: float

    def within(self, value: float, reference: float) -> bool:
        if not (math.isfinite(value) and math.isfinite(reference)):
            return False
        return value >= reference - self.tolerance if self.higher_is_better else value <= reference + self.tolerance


LOWER_IS_BETTER = {"loss", "ppl", "perplexity", "bits_per_byte", "bpb"}
# metrics on a 0-100 scale take 1 point; fractions 0.01 (one percentage point); a loss 1 % of itself
POINT = {"bleu": 1.0, "chrf": 1.0, "acc": 0.01, "macro_f1": 0.01, "exact_match": 0.01}


def default_tolerance(name: str, reference: float) -> float:
    return POINT.get(name, 0.01 * abs(reference))


def prunable(fractions: Sequence[float], values: Sequence[float], metric: Metric) -> float:
    """The largest fraction up to which every point of the curve stays within the tolerance of the
    unpruned value (the curve's first point)."""
    best = 0.0
    for fraction, value in zip(fractions, values):
        if not metric.within(value, values[0]):
            break
        best = fraction
    return best


def curve(order: Sequence[Head], shapes: Dict[str, Tuple[int, int]], fractions: Sequence[float], evaluate: Callable[[HeadMask], float]) -> List[float]:
    """The metric with the first round(f · len(order)) heads of ``order`` switched off, per fraction."""
    return [evaluate(mask_without(shapes, order[: count_at(f, len(order))])) for f in fractions]

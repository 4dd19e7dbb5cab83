"""Dropout whose random numbers cost a quarter of PyTorch's.

On a CPU most of dropout's time is its random numbers: ``bernoulli_`` draws one from the generator
per element, and the transformer's 32 dropouts made a fifth of its training step. Here one 64-bit
draw decides four elements: it is split into four 16-bit integers, each kept when at or above
``round(p * 65536)``, so every element is dropped with probability p to within 1/65536 (p = 0.1:
0.100006), independently, from torch's own generator (``torch.manual_seed`` reproduces a run). The
same numbers as ``nn.Dropout`` in distribution and scaling; not the same draws.

The input is multiplied by a float multiplier (0 or 1/(1-p), in the input's dtype) made once from
the mask: multiplying by the bool mask itself converted it to floats again in the forward and in
the backward pass, and scaled in a pass of its own (those copies were a tenth of the default
model's training step).

``dropout_implementation("native")`` switches back to PyTorch's (the benchmarks compare both).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMPLEMENTATIONS = ("packed", "native")
_implementation = "packed"


@contextlib.contextmanager
def dropout_implementation(name: str) -> Iterator[None]:
    """Within the block every attnlab dropout uses ``name`` (``packed`` or ``native``)."""
    global _implementation
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"dropout implementation must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    previous, _implementation = _implementation, name
    try:
        yield
    finally:
        _implementation = previous


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> Tensor:
    """A bool tensor of ``shape``, each element False with probability p (to within 2^-16)."""
    n = shape.numel()
    draws = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    halves = draws.view(torch.int16)[:n].view(shape)  # four signed 16-bit integers per draw
    return halves >= round(p * 65536) - 32768


def packed(device: torch.device) -> bool:
    """Whether attnlab's dropout draws its own random numbers on ``device`` (CPU, not switched off)."""
    return _implementation == "packed" and device.type == "cpu"


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout`` with the cheaper random numbers (on CPU; elsewhere PyTorch's own kernel)."""
    if not training or p == 0.0:
        return x
    if not packed(x.device) or p >= 1.0:
        return F.dropout(x, p, training)
    # as uint8, the mask converts to floats in a vectorised pass (from bool: x4-5 slower, as is where)
    multiplier = keep_mask(x.shape, p, x.device).view(torch.uint8).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * multiplier


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same attribute ``p``, no parameters) with the cheaper random numbers."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

"""Decoding with any :class:`~attnlab.models.base.Seq2Seq` through its ``encode``/``start``/``step``."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.models.base import Seq2Seq


def _join_steps(steps: List[Tensor]) -> Tensor:
    """Per-step (B, H, 1, S_t) weights -> (B, H, L, max S_t); decoder self-attention grows with t."""
    width = max(w.size(-1) for w in steps)
    return torch.cat([F.pad(w, (0, width - w.size(-1))) for w in steps], dim=2)


@torch.no_grad()
def greedy_decode(
    model: Seq2Seq,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    need_weights: bool = False,
) -> Tuple[Tensor, Optional[Dict[str, List[Tensor]]]]:
    """Most likely next token at every step.

    Returns tokens (B, L) without BOS, padded with ``model.pad_id`` after EOS, and — when asked —
    the attention weights of every step joined along the target axis: name -> per layer
    (B, H, L, S').
    """
    if model.max_target_positions is not None:
        max_len = min(max_len, model.max_target_positions)
    encoded = model.encode(src, need_weights=need_weights)
    state = model.start(encoded)
    B = src.size(0)
    tokens = torch.full((B,), bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    outputs: List[Tensor] = []
    step_weights: List[Dict[str, List[Tensor]]] = []
    for _ in range(max_len):
        logits, state, weights = model.step(tokens, state, encoded, need_weights=need_weights)
        tokens = logits.argmax(dim=-1).masked_fill(finished, model.pad_id)  # (B,)
        outputs.append(tokens)
        step_weights.append(weights)
        finished |= tokens.eq(eos_id)
        if bool(finished.all()):
            break
    out = torch.stack(outputs, dim=1)
    if not need_weights:
        return out, None
    joined = {
        name: [_join_steps([w[name][layer] for w in step_weights]) for layer in range(len(step_weights[0][name]))]
        for name in step_weights[0]
    }
    joined.update(encoded.weights)
    return out, joined

"""What each head does over a split, from one pass of the task's own loss per batch:

* importance — Michel et al. 2019, section 4.1: I_h = E_x |∂L(x)/∂ξ_h|, the gradient of the loss
  with respect to the head's gate ξ_h (at ξ = 1), its absolute value summed batch by batch (as their
  code does), then divided by the L2 norm of its layer's importances (their per-layer
  normalisation, which ranks heads of different layers on one scale);
* entropy — of each query's attention distribution over the keys, in nats, averaged over the
  queries (low: the head looks at a few positions; log S: it spreads evenly);
* distance — the mean |i − j| between a query's position and the positions it attends to,
  weighted by the attention (for cross-attention: target position against source position, so a
  monotone alignment reads as a small distance); none for a pooling query, which has no position;
* roles (self-attention only) — the share of queries whose most attended key is the previous
  token (j = i − 1), the next one (j = i + 1) or the first ([CLS], <bos>): Voita et al. 2019 call a
  head positional when one relative position is its maximum for over 90 % of the tokens.

Padding keys have no weight; padding queries of a self-attention with a padding mask are left out.
The decoder's padding queries (teacher forcing on padded targets) cannot be told apart here and are
counted: their attention is what the model computes for them. Differential attention's maps are
differences of two softmaxes, not distributions: they get no entropy or distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import torch
from torch import Tensor

from attnlab.attention import Attention
from attnlab.heads.gates import headed_layers

TINY = 1e-12


@dataclass
class HeadStats:
    """Per kind, (layers, heads) arrays; None where a measure does not apply."""

    importance: Dict[str, np.ndarray]  # normalised per layer
    raw_importance: Dict[str, np.ndarray]
    entropy: Dict[str, Optional[np.ndarray]]
    distance: Dict[str, Optional[np.ndarray]]
    roles: Dict[str, Dict[str, np.ndarray]]  # self kinds: "previous", "next", "first" -> (layers, heads) shares
    batches: int = 0
    examples: int = 0
    loss: float = float("nan")  # the mean of the batches' losses


@dataclass
class _Accumulator:
    """Sums of per-query entropy and distance, and query counts, per head of one layer."""

    heads: int
    pooling: bool  # a learned query: no position to measure a distance from
    self_attention: bool = False  # queries and keys are the same positions: roles mean something
    entropy: Tensor = field(init=False)
    distance: Tensor = field(init=False)
    count: Tensor = field(init=False)
    roles: Dict[str, Tensor] = field(init=False)  # argmax counts per head
    distribution: bool = True  # False once a map had negative weights (differential attention)

    def __post_init__(self) -> None:
        zeros = lambda: torch.zeros(self.heads, dtype=torch.float64)  # noqa: E731
        self.entropy, self.distance, self.count = zeros(), zeros(), zeros()
        self.roles = {"previous": zeros(), "next": zeros(), "first": zeros()}

    def __call__(self, weights: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> None:
        if weights is None:
            return
        w = weights.detach().float()  # (B, H, T, S)
        if bool((w < -1e-6).any()):
            self.distribution = False
            return
        B, H, T, S = w.shape
        rows = torch.ones(B, T, dtype=torch.bool, device=w.device)
        if key_padding_mask is not None and T == S and not self.pooling:  # self-attention: a padding key is a padding query
            rows = ~key_padding_mask
        keep = rows[:, None, :].to(w.dtype)  # (B, 1, T)
        entropy = -(w * w.clamp_min(TINY).log()).sum(-1)  # (B, H, T)
        self.entropy += (entropy * keep).sum((0, 2)).double().cpu()
        if not self.pooling:
            gap = (torch.arange(T, device=w.device)[:, None] - torch.arange(S, device=w.device)[None, :]).abs().to(w.dtype)  # (T, S)
            distance = (w * gap).sum(-1)  # (B, H, T)
            self.distance += (distance * keep).sum((0, 2)).double().cpu()
        if self.self_attention and T == S:
            offset = w.argmax(-1) - torch.arange(T, device=w.device)  # (B, H, T): the top key's j - i
            for role, hit in (("previous", offset == -1), ("next", offset == 1), ("first", w.argmax(-1) == 0)):
                self.roles[role] += (hit.to(w.dtype) * keep).sum((0, 2)).double().cpu()
        self.count += keep.sum().double().cpu().expand(H)

    def result(self):
        if not self.distribution or not bool((self.count > 0).all()):
            return None, None
        entropy = (self.entropy / self.count).numpy()
        return entropy, (None if self.pooling else (self.distance / self.count).numpy())

    def role_shares(self) -> Optional[Dict[str, np.ndarray]]:
        if not self.self_attention or not self.distribution or not bool((self.count > 0).all()):
            return None
        return {role: (hits / self.count).numpy() for role, hits in self.roles.items()}


def measure_heads(task: Any, batches: Iterable[Any], seed: int = 0) -> HeadStats:
    """Importance, entropy and distance of every head of ``task.model`` over ``batches`` (the
    task's own batches: its loss is what the gradients are of). The model's parameters get no
    gradients and are left as they were; the gates are removed afterwards."""
    model = task.model
    layers = headed_layers(model)
    dtype = next(model.parameters()).dtype
    gates = {kind: torch.ones(len(attns), attns[0].num_heads, dtype=dtype, requires_grad=True) for kind, attns in layers.items()}
    sinks: Dict[str, List[_Accumulator]] = {
        kind: [_Accumulator(a.num_heads, pooling=kind == "pooling", self_attention=kind.endswith("self")) for a in attns] for kind, attns in layers.items()
    }
    attentions: List[Attention] = []
    for kind, attns in layers.items():
        for i, attn in enumerate(attns):
            attn.set_head_gate(gates[kind][i])
            attn.weights_sink = sinks[kind][i]
            attentions.append(attn)
    needed = [p for p in task.parameters() if p.requires_grad]
    was_training = task.training
    torch.manual_seed(seed)  # the tasks that draw at random in their loss (masked-LM masking) draw the same
    batches_seen, examples, loss_sum = 0, 0, 0.0
    try:
        for p in needed:
            p.requires_grad_(False)
        task.eval()
        for batch in batches:
            loss = task.loss(batch)
            loss.backward()
            loss_sum += float(loss.detach())
            batches_seen += 1
            examples += int(batch[task.batch_key].size(0))
        raw = {kind: grid.grad.abs().numpy() if grid.grad is not None else np.zeros(tuple(grid.shape)) for kind, grid in gates.items()}
    finally:
        for attn in attentions:
            attn.set_head_gate(None)
            attn.weights_sink = None
        for p in needed:
            p.requires_grad_(True)
        task.train(was_training)
    importance = {kind: grid / (np.linalg.norm(grid, axis=-1, keepdims=True) + 1e-20) for kind, grid in raw.items()}
    entropy: Dict[str, Optional[np.ndarray]] = {}
    distance: Dict[str, Optional[np.ndarray]] = {}
    roles: Dict[str, Dict[str, np.ndarray]] = {}
    for kind, accumulators in sinks.items():
        results = [acc.result() for acc in accumulators]
        entropy[kind] = None if any(e is None for e, _ in results) else np.stack([e for e, _ in results])
        distance[kind] = None if any(d is None for _, d in results) else np.stack([d for _, d in results])
        shares = [acc.role_shares() for acc in accumulators]
        if all(share is not None for share in shares):
            roles[kind] = {role: np.stack([share[role] for share in shares]) for role in shares[0]}
    return HeadStats(importance, raw, entropy, distance, roles, batches_seen, examples, loss_sum / max(batches_seen, 1))

"""Head gates: which heads a model has, and ``task.head_mask``, the per-layer, per-head mask that
switches heads off at evaluation.

A headed attention (multi-head, grouped-query, local, linear, MLA, differential) multiplies each
head's output by its gate before the output projection — Michel et al. 2019's
``MHAtt(x) = Σ_h ξ_h Att_h(x)`` — and has no gate at all unless one is set. The kinds are the
model's own names for its attentions (``encoder_self``, ``decoder_self``, ``cross``; ``self`` for
a language model or a classifier's encoder; ``pooling``), as its attention weights are named.

``task.head_mask`` takes three forms, each checked against the model where it is applied:

* null — no gates;
* a list of heads to switch off: ``[cross.0.3, encoder_self.1]`` (``KIND.LAYER.HEAD``, or
  ``KIND.LAYER`` for all heads of a layer, ``KIND`` for all of a kind), layers and heads
  counted from 0 — the form a sweep takes: ``eval.py -m 'task.head_mask=[],[cross.0.0],[cross.0.1]'``;
* a mapping of kind to one row per layer of one gate per head, each in [0, 1]:
  ``{cross: [[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]}``; kinds left out keep every head.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import Tensor

from attnlab.attention import Attention
from attnlab.errors import ConfigError
from attnlab.run.checks import HEAD_MASK_FORM, head_mask_form
from attnlab.tasks.base import plain

KEY = "task.head_mask"
_NAME = re.compile(r"^([a-z_]+)(?:\.(\d+))?(?:\.(\d+))?$")

HeadMask = Dict[str, Tensor]  # kind -> (layers, heads) gates


def attention_layers(model: torch.nn.Module) -> Dict[str, List[Attention]]:
    """The model's attentions by kind (a model of another project's task may name none)."""
    return model.attention_layers() if hasattr(model, "attention_layers") else {}


def headed_layers(model: torch.nn.Module) -> Dict[str, List[Attention]]:
    """The model's kinds of attention whose every layer has heads to gate."""
    return {kind: attns for kind, attns in attention_layers(model).items() if attns and all(a.headed for a in attns)}


def describe_heads(layers: Mapping[str, List[Attention]]) -> str:
    """``encoder_self 3×4, cross 3×4``: each kind's layers × heads."""
    return ", ".join(f"{kind} {len(attns)}×{attns[0].num_heads}" for kind, attns in layers.items())


def require_heads(model: torch.nn.Module, what: str) -> Dict[str, List[Attention]]:
    """The headed layers, or a one-line refusal naming what the model has instead (``what``: the
    checkpoint or the model, as the user named it)."""
    layers = headed_layers(model)
    if not layers:
        attentions = {a.name for attns in attention_layers(model).values() for a in attns}
        has = f"its attention ({', '.join(sorted(attentions))}) has no heads" if attentions else "it has no attention"
        raise ConfigError(f"{what} has no attention heads to gate: {has}; heads exist in attention=multihead, local, linear, mla and differential")
    return layers


def head_mask(value: Any, model: torch.nn.Module, what: str = "this model") -> Optional[HeadMask]:
    """``task.head_mask`` as gates (layers, heads) per kind of ``model``; None: no gates. Refuses,
    in one line naming the key, a kind the model lacks, a shape that is not the model's, a gate
    outside [0, 1] and a mask that switches off every head of the model."""
    value = plain(value)
    if value is None:
        return None
    if not head_mask_form(value):  # (train.py and eval.py refused it already; other callers here)
        raise ConfigError(f"{KEY}={value!r} must be {HEAD_MASK_FORM}")
    layers = require_heads(model, what)
    gates = {kind: torch.ones(len(attns), attns[0].num_heads) for kind, attns in layers.items()}

    def kind_of(kind: str, where: str) -> Tensor:
        if kind not in gates:
            raise ConfigError(f"{where}: {what} has no headed attention {kind!r}; it has {describe_heads(layers)} (layers × heads)")
        return gates[kind]

    if isinstance(value, list):
        for i, name in enumerate(value):
            where = f"{KEY}[{i}]={name!r}"
            match = _NAME.match(name.strip())
            if not match:
                raise ConfigError(f"{where} must be KIND, KIND.LAYER or KIND.LAYER.HEAD (layers and heads from 0), e.g. cross.0.3")
            kind, layer, head = match.group(1), match.group(2), match.group(3)
            grid = kind_of(kind, where)
            rows = range(grid.size(0)) if layer is None else [int(layer)]
            if layer is not None and int(layer) >= grid.size(0):
                raise ConfigError(f"{where}: {kind} has layers 0–{grid.size(0) - 1}")
            if head is not None and int(head) >= grid.size(1):
                raise ConfigError(f"{where}: {kind} has heads 0–{grid.size(1) - 1}")
            for row in rows:
                grid[row, slice(None) if head is None else int(head)] = 0.0
    else:
        for kind, rows in value.items():
            where = f"{KEY}.{kind}"
            grid = kind_of(kind, where)
            shape = f"{grid.size(0)} rows (layers) of {grid.size(1)} gates (heads)"
            if not isinstance(rows, list) or len(rows) != grid.size(0) or any(not isinstance(r, list) or len(r) != grid.size(1) for r in rows):
                raise ConfigError(f"{where} must be {shape}, as {kind} attention has; got {rows!r}"[:300])
            for layer, row in enumerate(rows):
                for head, gate in enumerate(row):
                    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not math.isfinite(gate) or not 0 <= gate <= 1:
                        raise ConfigError(f"{where}[{layer}][{head}]={gate!r} must be a number in [0, 1] (1 keeps the head, 0 removes it)")
                    grid[layer, head] = float(gate)
    if all(bool((grid == 0).all()) for grid in gates.values()):
        raise ConfigError(f"{KEY} switches off every head of {what} ({describe_heads(layers)}): nothing would attend; keep at least one head")
    return gates


def set_head_mask(model: torch.nn.Module, gates: Optional[HeadMask]) -> None:
    """Set each headed layer's gates (None: remove every gate)."""
    for kind, attns in headed_layers(model).items():
        for layer, attn in enumerate(attns):
            attn.set_head_gate(None if gates is None or kind not in gates else gates[kind][layer])


def masked_heads(gates: Optional[HeadMask]) -> List[str]:
    """The names (``cross.0.3``) of the heads a mask switches off, for a run's record."""
    if gates is None:
        return []
    return [f"{kind}.{layer}.{head}" for kind, grid in gates.items() for layer, head in (grid == 0).nonzero().tolist()]

"""What every sequence-to-sequence model offers, whatever its architecture.

A task (training loop, decoding, plots) talks to a model only through this interface:

* ``forward(src, tgt_in, need_weights)`` — teacher-forced logits (B, T, V) and attention weights;
* ``encode`` once per source, then ``start`` and repeated ``step`` for decoding token by token.

Attention weights come back as a dict from a name (``cross``, ``encoder_self``,
``decoder_self``) to a list with one (B, H, T, S) tensor per layer.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from attnlab.attention import Attention
from attnlab.positional import PositionalEncoding

AttentionFactory = Callable[..., Attention]
PositionalFactory = Callable[..., PositionalEncoding]
Weights = Dict[str, List[Tensor]]


@dataclass
class Encoded:
    """An encoded source batch."""

    memory: Tensor  # (B, S, d) encoder outputs
    padding_mask: Tensor  # (B, S) bool, True at padding
    final_state: Any = None  # recurrent encoders: the state the decoder starts from
    weights: Weights = field(default_factory=dict)  # encoder self-attention, when asked for


class Seq2Seq(nn.Module):
    """Base class of the encoder-decoder architectures."""

    pad_id: int
    # a learned positional table's limits, if any: the longest source it reads, output it writes
    max_source_positions: Optional[int] = None
    max_target_positions: Optional[int] = None

    def attention_layers(self) -> Dict[str, List[Attention]]:
        """Each kind of attention (named as in the weights: ``encoder_self``, ``decoder_self``,
        ``cross``) -> its attention module per layer."""
        return {}

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        raise NotImplementedError

    def decode(self, tgt_in: Tensor, encoded: Encoded, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        """Teacher-forced decoding of (B, T) target inputs -> logits (B, T, V)."""
        raise NotImplementedError

    def start(self, encoded: Encoded) -> Any:
        """The decoder state before the first generated token."""
        raise NotImplementedError

    def step(
        self, tokens: Tensor, state: Any, encoded: Encoded, need_weights: bool = False
    ) -> Tuple[Tensor, Any, Weights]:
        """Feed (B,) tokens, get logits (B, V) for the next one and the new state."""
        raise NotImplementedError

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        """Select (and repeat) batch rows of a decoding state: beam search keeps the best beams.

        ``index`` moves rows only among those decoding the same source sentence (one sentence's
        beams), so what depends on the source alone (encoder memory, cross-attention keys and
        values) is the same in every one of them and stays where it is, uncopied."""
        raise NotImplementedError

    def forward(self, src: Tensor, tgt_in: Tensor, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        encoded = self.encode(src, need_weights=need_weights)
        logits, weights = self.decode(tgt_in, encoded, need_weights=need_weights)
        return logits, {**encoded.weights, **weights}


class LanguageModel(nn.Module):
    """Base class of the decoder-only (causal) language models.

    * ``forward(tokens, need_weights)`` -> logits (B, T, V) and weights (``self`` per layer);
    * ``start(batch_size)`` then ``step(tokens (B, t), state)`` -> logits (B, t, V) and the new
      state: generation with a cache (a prompt goes in as one chunk).
    """

    pad_id: int
    max_positions: Optional[int] = None  # a learned positional table's length, if any

    def attention_layers(self) -> Dict[str, List[Attention]]:
        """``self`` -> its attention module per layer (none: empty)."""
        return {}

    def forward(self, tokens: Tensor, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        raise NotImplementedError

    def start(self, batch_size: int) -> Any:
        raise NotImplementedError

    def step(self, tokens: Tensor, state: Any) -> Tuple[Tensor, Any]:
        raise NotImplementedError


@contextmanager
def inference(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no dropout) and no gradients inside the block; the module's own mode after it,
    so samples drawn in the middle of training leave it training."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """(B, L) bool mask, True at padding."""
    return tokens.eq(pad_id)


def make_attention(factory: AttentionFactory, layer_index: int, cross: bool = False, **kwargs: Any) -> Attention:
    """One layer's attention from the factory: ``layer_index`` (0-based) goes to the types whose
    formula depends on depth (differential attention's λ_init); ``cross`` marks it as reading
    another sequence."""
    target = getattr(factory, "func", factory)
    if getattr(target, "takes_layer_index", False):
        kwargs["layer_index"] = layer_index
    attention = factory(**kwargs)
    return attention.for_cross_attention() if cross else attention


def check_attention_for_rnn(attention: Attention) -> None:
    if not attention.allows_rnn:
        raise ValueError(
            f"arch=rnn cannot use {attention.name}: its window is counted along one sequence, and an RNN "
            f"attends across (a source) or has its own sense of order; choose attention=additive, dot, multihead, "
            f"linear, mla or differential"
        )


def check_attention_for_self_attention(attention: Attention, arch: str) -> None:
    if not attention.allows_self_attention:
        raise ValueError(
            f"attention=none cannot be used with arch={arch}: its layers are built from "
            f"self-attention; choose attention=additive, dot, multihead, local, linear, mla or differential"
        )
    if attention.position_hook is not None:
        attention.position_hook.check(attention)


def concat_weights(steps: List[Optional[Tensor]]) -> Optional[Tensor]:
    """Join per-step (B, H, 1, S) weights along the target axis -> (B, H, T, S)."""
    if not steps or steps[0] is None:
        return None
    return torch.cat(steps, dim=2)

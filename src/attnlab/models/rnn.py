"""RNN encoder-decoder with pluggable attention (Bahdanau et al. 2015; Luong et al. 2015).

The encoder is a (bi)directional GRU or LSTM; a bridge maps its final state to the decoder's
initial state. Two decoder styles:

* ``bahdanau``: attend with the previous state s_{t-1}, feed the context into the step;
* ``luong``: step first, then attend with s_t and combine h̃_t = tanh(W_c [c_t; s_t]);
  with ``input_feeding`` h̃_{t-1} is fed into the next step.

When nothing is fed back (``luong`` without input feeding) the teacher-forced pass runs the
recurrent layer over the whole target at once and attends for all steps in one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.attention import Attention, Memory
from attnlab.dropout import Dropout
from attnlab.positional import NoPositionalEncoding
from attnlab.models.base import (
    AttentionFactory,
    Encoded,
    LanguageModel,
    PositionalFactory,
    Seq2Seq,
    Weights,
    check_attention_for_rnn,
    concat_weights,
    make_attention,
    padding_mask,
)

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _map_state(state: Any, fn) -> Any:
    """Apply fn to a GRU state tensor or to both tensors of an LSTM (h, c) state."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def _top_hidden(state: Any) -> Tensor:
    """The last layer's hidden state (B, d), used as the attention query."""
    h = state[0] if isinstance(state, tuple) else state
    return h[-1]


class RNNEncoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        d_model: int,
        cell: str,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        pos_enc: PositionalFactory,
        pad_id: int,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.pos = pos_enc(d_model=emb_dim)
        self.pos.refuse_without_self_attention("rnn")
        self.dropout = Dropout(dropout)
        self.num_directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            emb_dim,
            d_model,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        # attention works at width d_model: fold the two directions back into it
        self.output_proj = nn.Linear(2 * d_model, d_model) if bidirectional else nn.Identity()
        self.num_layers = num_layers

    def forward(self, src: Tensor, pad_mask: Tensor) -> Tuple[Tensor, Any]:
        B, S = src.shape
        x = self.dropout(self.pos(self.embed(src)))  # (B, S, E)
        lengths = (~pad_mask).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=S)  # (B, S, dirs*d)

        def join_directions(s: Tensor) -> Tensor:  # (layers*dirs, B, d) -> (layers, B, dirs*d)
            s = s.view(self.num_layers, self.num_directions, B, -1)
            return torch.cat(s.unbind(1), dim=-1)

        return self.output_proj(outputs), _map_state(final, join_directions)


class RNNTextEncoder(nn.Module):
    """An RNN encoder on its own: (B, S) tokens -> states (B, S, d), padding mask (B, S), no
    attention weights (an RNN has none of its own; a head's attention pools its states)."""

    def __init__(self, vocab_size: int, pos_enc: PositionalFactory, pad_id: int = 0, d_model: int = 256, emb_dim: int = 128,
                 cell: str = "gru", num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"arch.cell must be one of {', '.join(CELLS)}; got {cell!r}")
        self.pad_id = pad_id
        self.d_model = d_model
        self.encoder = RNNEncoder(vocab_size, emb_dim, d_model, cell, num_layers, bidirectional, dropout, pos_enc, pad_id)

    @property
    def embed(self) -> nn.Embedding:  # the token embedding, where a transformer encoder has it
        return self.encoder.embed

    @property
    def pos(self):
        return self.encoder.pos

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {}

    def forward(self, tokens: Tensor, need_weights: bool = False, token_types: Optional[Tensor] = None):
        mask = padding_mask(tokens, self.pad_id)
        states, _ = self.encoder(tokens, mask)
        return states, mask, []


class Bridge(nn.Module):
    """Encoder final state (layers, B, dirs*d) -> decoder initial state (layers, B, d)."""

    def __init__(self, enc_dim: int, d_model: int, lstm: bool):
        super().__init__()
        self.hidden = nn.Linear(enc_dim, d_model)
        self.cell = nn.Linear(enc_dim, d_model) if lstm else None

    def forward(self, final: Any) -> Any:
        if isinstance(final, tuple):
            h, c = final
            return torch.tanh(self.hidden(h)).contiguous(), self.cell(c).contiguous()
        return torch.tanh(self.hidden(final)).contiguous()


@dataclass
class RNNDecoderState:
    hidden: Any  # GRU (layers, B, d) or LSTM (h, c)
    memory: Memory  # encoder outputs after the attention's key projection, computed once
    feed: Optional[Tensor]  # (B, 1, d) attentional vector fed back (luong + input feeding)
    offset: int  # position of the next token, for positional encodings


class _RNNDecoder(nn.Module):
    """Shared parts of both decoder styles; subclasses define ``_step``."""

    feeds_back: bool = True  # whether step t needs step t-1's output (no whole-sequence pass)

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        d_model: int,
        cell: str,
        num_layers: int,
        dropout: float,
        attention: Attention,
        pos_enc: PositionalFactory,
        pad_id: int,
        rnn_input: int,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.pos = pos_enc(d_model=emb_dim)
        self.pos.refuse_without_self_attention("rnn")
        self.dropout = Dropout(dropout)
        self.attention = attention
        self.rnn = CELLS[cell](rnn_input, d_model, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.d_model = d_model

    def embed_tokens(self, tokens: Tensor, offset: int = 0) -> Tensor:  # (B, T) -> (B, T, E)
        return self.dropout(self.pos(self.embed(tokens), offset=offset))

    def _step(self, emb: Tensor, state: RNNDecoderState, pad_mask: Tensor, need_weights: bool):
        """One step: emb (B, 1, E) -> output (B, 1, d), new recurrent hidden, new feed, weights."""
        raise NotImplementedError

    def step(self, tokens: Tensor, state: RNNDecoderState, pad_mask: Tensor, need_weights: bool = False):
        emb = self.embed_tokens(tokens.unsqueeze(1), offset=state.offset)  # (B, 1, E)
        out, hidden, feed, w = self._step(emb, state, pad_mask, need_weights)
        return out, RNNDecoderState(hidden, state.memory, feed, state.offset + 1), w

    def forward_stepwise(self, tgt_in: Tensor, state: RNNDecoderState, pad_mask: Tensor, need_weights: bool = False):
        """Teacher forcing one step at a time: (B, T) -> outputs (B, T, d), weights (B, 1, T, S)."""
        emb = self.embed_tokens(tgt_in)
        outputs, weights = [], []
        for t in range(tgt_in.size(1)):
            out, hidden, feed, w = self._step(emb[:, t : t + 1], state, pad_mask, need_weights)
            state = RNNDecoderState(hidden, state.memory, feed, state.offset + 1)
            outputs.append(out)
            weights.append(w)
        return torch.cat(outputs, dim=1), concat_weights(weights)

    def forward(self, tgt_in: Tensor, state: RNNDecoderState, pad_mask: Tensor, need_weights: bool = False):
        return self.forward_stepwise(tgt_in, state, pad_mask, need_weights)


class BahdanauDecoder(_RNNDecoder):
    """Attention before the step: c_t = attend(s_{t-1}); s_t = RNN([y_{t-1}; c_t], s_{t-1})."""

    def __init__(self, vocab_size, emb_dim, d_model, cell, num_layers, dropout, attention, pos_enc, pad_id, input_feeding=False):
        super().__init__(vocab_size, emb_dim, d_model, cell, num_layers, dropout, attention, pos_enc, pad_id, emb_dim + d_model)
        self.readout = nn.Linear(2 * d_model + emb_dim, d_model)  # deep output over [s_t; c_t; y_{t-1}]

    def _step(self, emb, state, pad_mask, need_weights):
        query = _top_hidden(state.hidden).unsqueeze(1)  # (B, 1, d)
        context, w = self.attention.attend(query, state.memory, pad_mask, need_weights=need_weights)
        out, hidden = self.rnn(torch.cat([emb, context], dim=-1), state.hidden)  # (B, 1, d)
        return torch.tanh(self.readout(torch.cat([out, context, emb], dim=-1))), hidden, None, w


class LuongDecoder(_RNNDecoder):
    """Attention after the step: s_t = RNN(y_{t-1}[, h̃_{t-1}]); h̃_t = tanh(W_c [attend(s_t); s_t])."""

    def __init__(self, vocab_size, emb_dim, d_model, cell, num_layers, dropout, attention, pos_enc, pad_id, input_feeding=False):
        rnn_input = emb_dim + (d_model if input_feeding else 0)
        super().__init__(vocab_size, emb_dim, d_model, cell, num_layers, dropout, attention, pos_enc, pad_id, rnn_input)
        self.input_feeding = input_feeding
        self.feeds_back = input_feeding
        self.combine = nn.Linear(2 * d_model, d_model)

    def _attentional(self, out: Tensor, memory: Memory, pad_mask: Tensor, need_weights: bool):
        context, w = self.attention.attend(out, memory, pad_mask, need_weights=need_weights)  # (B, T, d)
        return torch.tanh(self.combine(torch.cat([context, out], dim=-1))), w

    def _step(self, emb, state, pad_mask, need_weights):
        rnn_in = emb
        if self.input_feeding:
            feed = state.feed if state.feed is not None else emb.new_zeros(emb.size(0), 1, self.d_model)
            rnn_in = torch.cat([emb, feed], dim=-1)
        out, hidden = self.rnn(rnn_in, state.hidden)  # (B, 1, d)
        attentional, w = self._attentional(out, state.memory, pad_mask, need_weights)
        return attentional, hidden, attentional if self.input_feeding else None, w

    def forward(self, tgt_in, state, pad_mask, need_weights=False):
        if self.feeds_back:
            return self.forward_stepwise(tgt_in, state, pad_mask, need_weights)
        # fast path: the whole target through the RNN at once, then one batched attention call
        out, _ = self.rnn(self.embed_tokens(tgt_in), state.hidden)  # (B, T, d)
        return self._attentional(out, state.memory, pad_mask, need_weights)


DECODERS = {"bahdanau": BahdanauDecoder, "luong": LuongDecoder}


class RNNSeq2Seq(Seq2Seq):
    """Encoder-decoder RNN. ``attention`` and ``pos_enc`` are factories called with ``d_model``."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        attention: AttentionFactory,
        pos_enc: Optional[PositionalFactory] = None,
        pad_id: int = 0,
        d_model: int = 256,
        emb_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
        decoder: str = "luong",
        input_feeding: bool = False,
        tie_embeddings: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"arch.cell must be one of {', '.join(CELLS)}; got {cell!r}")
        if decoder not in DECODERS:
            raise ValueError(f"arch.decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
        self.pad_id = pad_id
        pos_enc = pos_enc or NoPositionalEncoding  # order comes from the recurrence itself
        self.encoder = RNNEncoder(src_vocab_size, emb_dim, d_model, cell, num_layers, bidirectional, dropout, pos_enc, pad_id)
        self.bridge = Bridge(d_model * self.encoder.num_directions, d_model, lstm=cell == "lstm")
        cross = make_attention(attention, 0, cross=True, d_model=d_model)
        check_attention_for_rnn(cross)
        self.decoder = DECODERS[decoder](
            tgt_vocab_size, emb_dim, d_model, cell, num_layers, dropout, cross, pos_enc, pad_id, input_feeding
        )
        self.max_source_positions = self.encoder.pos.max_len
        self.max_target_positions = self.decoder.pos.max_len
        self.output_dropout = Dropout(dropout)
        if tie_embeddings:
            self.pre_generator = nn.Linear(d_model, emb_dim)
            self.generator = nn.Linear(emb_dim, tgt_vocab_size)
            self.generator.weight = self.decoder.embed.weight
        else:
            self.pre_generator = nn.Identity()
            self.generator = nn.Linear(d_model, tgt_vocab_size)

    @classmethod
    def decoder_only(
        cls,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: Optional[PositionalFactory] = None,
        pad_id: int = 0,
        d_model: int = 256,
        emb_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.1,
        tie_embeddings: bool = False,
        bidirectional: Optional[bool] = None,  # the encoder's setting: a language model reads left to right
        decoder: Optional[str] = None,
        input_feeding: Optional[bool] = None,
    ) -> "RNNLM":
        """A recurrent language model from the same ``arch`` settings; with an attention type it
        also attends over its own past states (``attention=none``: the plain RNN LM)."""
        return RNNLM(vocab_size, attention, pos_enc or NoPositionalEncoding, pad_id, d_model, emb_dim, cell, num_layers, dropout, tie_embeddings)

    @classmethod
    def encoder_only(
        cls,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: Optional[PositionalFactory] = None,
        pad_id: int = 0,
        d_model: int = 256,
        emb_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
        decoder: Optional[str] = None,  # the encoder-decoder's own settings: unused here
        input_feeding: Optional[bool] = None,
        tie_embeddings: Optional[bool] = None,
    ) -> RNNTextEncoder:
        """The encoder of this architecture, from the same ``arch`` settings. ``attention`` is not
        the encoder's: a classifier pools the states with it."""
        return RNNTextEncoder(vocab_size, pos_enc or NoPositionalEncoding, pad_id, d_model, emb_dim, cell, num_layers, bidirectional, dropout)

    def _logits(self, hidden: Tensor) -> Tensor:
        return self.generator(self.pre_generator(self.output_dropout(hidden)))

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {"cross": [self.decoder.attention]}

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        mask = padding_mask(src, self.pad_id)
        memory, final = self.encoder(src, mask)
        return Encoded(memory=memory, padding_mask=mask, final_state=final)

    def start(self, encoded: Encoded) -> RNNDecoderState:
        memory = self.decoder.attention.project_memory(encoded.memory, encoded.memory)
        return RNNDecoderState(self.bridge(encoded.final_state), memory, None, 0)

    def decode(self, tgt_in: Tensor, encoded: Encoded, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        hidden, w = self.decoder(tgt_in, self.start(encoded), encoded.padding_mask, need_weights)
        return self._logits(hidden), ({"cross": [w]} if need_weights else {})

    def step(self, tokens, state, encoded, need_weights=False):
        hidden, state, w = self.decoder.step(tokens, state, encoded.padding_mask, need_weights)
        return self._logits(hidden).squeeze(1), state, ({"cross": [w]} if need_weights else {})

    def reorder_state(self, state: RNNDecoderState, index: Tensor) -> RNNDecoderState:
        return RNNDecoderState(
            _map_state(state.hidden, lambda h: h.index_select(1, index)),  # (layers, B, d)
            state.memory,  # the encoder's, the same for every beam of a sentence
            None if state.feed is None else state.feed.index_select(0, index),
            state.offset,
        )


@dataclass
class RNNLMState:
    hidden: Any  # GRU (layers, B, d) or LSTM (h, c); None before the first token
    memory: Any  # the attention's cache of the past outputs (None before the first step and without attention)
    offset: int


class RNNLM(LanguageModel):
    """A GRU/LSTM language model. With an attention type (not ``none``), each step also attends
    over the RNN's own past outputs (causally) and combines h̃_t = tanh(W_c [c_t; h_t]), as the
    Luong decoder does over a source; the attention's memory grows by one position a step."""

    def __init__(
        self,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        emb_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.1,
        tie_embeddings: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"arch.cell must be one of {', '.join(CELLS)}; got {cell!r}")
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.pos = pos_enc(d_model=emb_dim)
        self.pos.refuse_without_self_attention("rnn")
        self.max_positions = self.pos.max_len
        self.dropout = Dropout(dropout)
        self.rnn = CELLS[cell](emb_dim, d_model, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        attn = make_attention(attention, 0, d_model=d_model)
        check_attention_for_rnn(attn)
        self.attention = attn if attn.allows_self_attention else None  # none: nothing to attend with
        self.combine = nn.Linear(2 * d_model, d_model) if self.attention is not None else None
        if tie_embeddings:
            self.pre_generator = nn.Linear(d_model, emb_dim)
            self.generator = nn.Linear(emb_dim, vocab_size)
            self.generator.weight = self.embed.weight
        else:
            self.pre_generator = nn.Identity()
            self.generator = nn.Linear(d_model, vocab_size)

    def _run(self, tokens: Tensor, state: RNNLMState, need_weights: bool = False):
        """tokens (B, t) from state.offset on -> logits (B, t, V), new state, attention weights."""
        emb = self.dropout(self.pos(self.embed(tokens), offset=state.offset))  # (B, t, E)
        out, hidden = self.rnn(emb, state.hidden)  # (B, t, d)
        memory, weights = state.memory, None
        if self.attention is not None:
            context, memory, weights = self.attention.step(out, memory, state.offset, need_weights)
            out = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))
        logits = self.generator(self.pre_generator(self.dropout(out)))
        return logits, RNNLMState(hidden, memory, state.offset + tokens.size(1)), weights

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {"self": [self.attention]} if self.attention is not None else {}

    def forward(self, tokens: Tensor, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        logits, _, weights = self._run(tokens, self.start(tokens.size(0)), need_weights)
        return logits, ({"self": [weights]} if need_weights and weights is not None else {})

    def start(self, batch_size: int) -> RNNLMState:
        return RNNLMState(None, None, 0)

    def step(self, tokens: Tensor, state: RNNLMState) -> Tuple[Tensor, RNNLMState]:
        logits, state, _ = self._run(tokens, state)
        return logits, state

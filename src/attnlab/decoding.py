"""Decoding: greedy and beam search with any :class:`~attnlab.models.base.Seq2Seq` (through its
``encode``/``start``/``step``), and sampling from any :class:`~attnlab.models.base.LanguageModel`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.models.base import LanguageModel, Seq2Seq


def output_limits(model: Seq2Seq, max_len: Union[int, Tensor], batch: int, device) -> Tensor:
    """Per-sentence output length limits (B,), capped by a learned positional table."""
    limits = torch.as_tensor(max_len, dtype=torch.long, device=device).expand(batch).clone()
    if model.max_target_positions is not None:
        limits.clamp_(max=model.max_target_positions)
    return limits


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
    max_len: Union[int, Tensor],
    need_weights: bool = False,
) -> Tuple[Tensor, Optional[Dict[str, List[Tensor]]]]:
    """Most likely next token at every step.

    Returns tokens (B, L) without BOS, padded with ``model.pad_id`` after EOS, and — when asked —
    the attention weights of every step joined along the target axis: name -> per layer
    (B, H, L, S').
    """
    B = src.size(0)
    limits = output_limits(model, max_len, B, src.device)  # (B,)
    encoded = model.encode(src, need_weights=need_weights)
    state = model.start(encoded)
    tokens = torch.full((B,), bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    outputs: List[Tensor] = []
    step_weights: List[Dict[str, List[Tensor]]] = []
    for t in range(int(limits.max())):
        finished |= limits.le(t)  # a sentence's own limit: the result never depends on its batch
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
    # a kind whose steps keep no weights (linear attention's recurrent state keeps no keys) is left out
    joined = {
        name: [_join_steps([w[name][layer] for w in step_weights]) for layer in range(len(step_weights[0][name]))]
        for name in step_weights[0]
        if all(layer is not None for w in step_weights for layer in w[name])
    }
    joined.update(encoded.weights)
    return out, joined


@dataclass
class Hypothesis:
    tokens: List[int]  # without BOS, ending in EOS when finished
    score: float  # log-probability divided by the length penalty: what beams are ranked by
    log_prob: float  # the model's log-probability of the tokens (including EOS)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT (Wu et al. 2016): ((5 + |Y|) / 6) ** alpha; alpha = 0 ranks by raw log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: Union[int, Tensor],
    beam_size: int = 5,
    alpha: float = 0.6,
    n_best: int = 1,
) -> List[List[Hypothesis]]:
    """Batched beam search: every sentence's ``beam_size`` beams advance in one model call.

    Returns, per sentence, the ``n_best`` hypotheses, best first. A beam that emits EOS is
    finished. A sentence is done once its ``n_best``-th finished hypothesis scores at least what
    any live beam still could: log-probabilities only fall as a beam grows, so a live beam's best
    possible score is its current one divided by the largest length penalty ahead. At
    ``max_len`` the best unfinished beams fill up the n-best list.
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size; got beam_size={beam_size}, n_best={n_best}")
    B, K = src.size(0), beam_size
    device = src.device
    limits = output_limits(model, max_len, B, device)  # (B,)
    encoded = model.encode(src.repeat_interleave(K, dim=0))  # each sentence K times: (B*K, S)
    state = model.start(encoded)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)
    finished: List[List[Hypothesis]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    base = (torch.arange(B, device=device) * K).unsqueeze(1)  # (B, 1)
    for t in range(int(limits.max())):
        logits, state, _ = model.step(tokens, state, encoded)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        V = log_probs.size(-1)
        candidates = (scores.unsqueeze(-1) + log_probs.view(B, K, V)).view(B, K * V)
        top_scores, top_index = candidates.topk(2 * K, dim=1)  # (B, 2K): K non-EOS always among them
        top_beam, top_token = top_index // V, top_index % V
        is_eos = top_token.eq(eos_id)
        # EOS among the K best candidates finishes a hypothesis
        for b, k in (is_eos[:, :K] & torch.isfinite(top_scores[:, :K]) & ~done.unsqueeze(1)).nonzero().tolist():
            row = int(base[b, 0] + top_beam[b, k])
            length = t + 1
            raw = float(top_scores[b, k])
            finished[b].append(Hypothesis(history[row].tolist() + [eos_id], raw / length_penalty(length, alpha), raw))
        # the K best candidates that are not EOS continue
        rank = torch.arange(2 * K, device=device).expand(B, 2 * K)
        keep = torch.where(is_eos, rank + 2 * K, rank).argsort(dim=1)[:, :K]  # (B, K)
        scores = top_scores.gather(1, keep)
        rows = (base + top_beam.gather(1, keep)).view(-1)  # (B*K,)
        tokens = top_token.gather(1, keep).view(-1)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], dim=1)
        state = model.reorder_state(state, rows)
        best_possible = scores.max(dim=1).values.tolist()  # (B,)
        for b in range(B):
            if done[b]:
                continue
            if t + 1 >= int(limits[b]):  # out of length: the live beams join the candidates
                _add_unfinished(finished[b], history[b * K : (b + 1) * K], scores[b], alpha)
                done[b] = True
            elif len(finished[b]) >= n_best:
                nth = sorted((h.score for h in finished[b]), reverse=True)[n_best - 1]
                done[b] = nth >= best_possible[b] / length_penalty(int(limits[b]), alpha)
        if bool(done.all()):
            break
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best] for hyps in finished]


def _add_unfinished(hyps: List[Hypothesis], history: Tensor, scores: Tensor, alpha: float) -> None:
    """Beams cut off by the length limit: (K, t) tokens with their (K,) scores."""
    for k in range(history.size(0)):
        raw = float(scores[k])
        if raw > float("-inf"):
            hyps.append(Hypothesis(history[k].tolist(), raw / length_penalty(history.size(1), alpha), raw))


@torch.no_grad()
def sequence_log_prob(model: Seq2Seq, src: Tensor, hyps: Tensor, bos_id: int, pad_id: int) -> Tensor:
    """Model log-probability (B,) of given outputs (B, L) (padded with ``pad_id``, EOS included)."""
    tgt_in = torch.cat([torch.full_like(hyps[:, :1], bos_id), hyps[:, :-1]], dim=1)
    logits, _ = model(src, tgt_in)
    log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, hyps.unsqueeze(-1)).squeeze(-1)  # (B, L)
    return log_probs.masked_fill(hyps.eq(pad_id), 0.0).sum(dim=1)


# -- language models ------------------------------------------------------------------------------
def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """One token per row of (B, V) logits: the most likely at ``temperature`` 0, else drawn from
    softmax(logits / temperature) restricted to the ``top_k`` most likely tokens and to the
    smallest set whose probability reaches ``top_p`` (nucleus sampling; the best token always stays)."""
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError(f"need temperature >= 0, top_k >= 1, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        outside = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # the mass before a token already reaches p
        logits = logits.masked_fill(outside.scatter(1, order, outside), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: LanguageModel,
    prompt: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    use_cache: bool = True,
    context: Optional[int] = None,
    progress: Optional[Callable[[], None]] = None,
) -> Tensor:
    """Continue (B, P) prompts by ``max_new_tokens`` tokens -> (B, P + max_new_tokens).

    With ``use_cache`` the prompt goes through once and each new token costs one step; without it
    every step recomputes the whole sequence (the reference the cache must equal). The model sees
    at most its last ``context`` tokens (the block size it was trained on; GPT's way) and never more
    than a learned positional table's ``max_positions``: past that, generation slides the window
    and recomputes. ``progress`` is called once per new token.
    """
    limits = [n for n in (context, model.max_positions) if n is not None]
    window = min(limits) if limits else None
    sequence = prompt
    state = model.start(prompt.size(0)) if use_cache else None
    pending = prompt  # what the cache has not seen yet
    for _ in range(max_new_tokens):
        if state is not None and window is not None and state.offset + pending.size(1) > window:
            state = None  # the table ends here: slide the window from now on
        if state is None:
            context = sequence if window is None else sequence[:, -window:]
            logits, _ = model(context)
        else:
            logits, state = model.step(pending, state)
        token = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
        sequence = torch.cat([sequence, token.unsqueeze(1)], dim=1)
        pending = token.unsqueeze(1)
        if progress is not None:
            progress()
    return sequence

"""Decoding: beam search vs greedy, the transformer's key/value cache vs recomputation."""

import functools

import pytest
import torch

from attnlab.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention
from attnlab.decoding import beam_search, greedy_decode, sequence_log_prob
from attnlab.models import TransformerSeq2Seq
from attnlab.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from tests.helpers import ATTENTION, BOS, EOS, PAD, V, build, toy_batch

TRANSFORMER_ATTENTION = {
    "additive": functools.partial(AdditiveAttention, d_attn=16),
    "dot": functools.partial(DotProductAttention, score="dot"),
    "general": functools.partial(DotProductAttention, score="general"),
    "scaled": functools.partial(DotProductAttention, score="scaled"),
    "multihead": functools.partial(MultiHeadAttention, num_heads=4),
    **{kind: ATTENTION[kind] for kind in ("local", "linear", "mla", "differential")},
}


@pytest.mark.parametrize("attention", sorted(TRANSFORMER_ATTENTION))
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cached_decoding_equals_full_recomputation(attention, norm):
    torch.manual_seed(0)
    pos = functools.partial(LearnedPositionalEncoding, max_len=64) if norm == "pre" else SinusoidalPositionalEncoding
    model = TransformerSeq2Seq(V, V, TRANSFORMER_ATTENTION[attention], pos, PAD, d_model=32, d_ff=64, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0, norm=norm).eval()
    src, _, _ = toy_batch(n=6)
    model.incremental = True
    cached, w_cached = greedy_decode(model, src, BOS, EOS, max_len=12, need_weights=True)
    model.incremental = False
    full, w_full = greedy_decode(model, src, BOS, EOS, max_len=12, need_weights=True)
    assert torch.equal(cached, full)
    for kind in ("cross", "decoder_self"):
        if kind not in w_cached:  # linear attention's recurrent state keeps no keys to weigh
            assert (attention, kind) == ("linear", "decoder_self")
            continue
        for a, b in zip(w_cached[kind], w_full[kind]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and the cached step logits equal the teacher-forced pass over the decoded prefix
    model.incremental = True
    encoded = model.encode(src)
    state = model.start(encoded)
    tgt_in = torch.cat([torch.full_like(cached[:, :1], BOS), cached[:, :-1]], dim=1)
    logits, _ = model(src, tgt_in)
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = model.step(tgt_in[:, t], state, encoded)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_beam_size_one_equals_greedy(arch):
    torch.manual_seed(1)
    model = build(arch, "additive").eval()
    src, _, _ = toy_batch(n=7)
    greedy, _ = greedy_decode(model, src, BOS, EOS, max_len=10)
    beams = beam_search(model, src, BOS, EOS, max_len=10, beam_size=1, alpha=0.0)
    for row, hyps in zip(greedy.tolist(), beams):
        expected = [t for t in row if t != PAD]
        assert hyps[0].tokens == expected


def train_reverse_copy(arch, steps=150):
    torch.manual_seed(0)
    model = build(arch, "multihead" if arch == "transformer" else "additive")
    src, tgt_in, tgt_out = toy_batch(n=32, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        logits, _ = model(src, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("arch", [pytest.param("rnn", marks=pytest.mark.slow), "transformer"])  # rnn: the slow tier (fast tier under 10 minutes)
def test_beam_search_model_score_is_never_worse_than_greedy(arch):
    model = train_reverse_copy(arch)
    src, _, _ = toy_batch(n=16, seed=11)  # unseen sequences: the model is unsure, beams differ
    greedy, _ = greedy_decode(model, src, BOS, EOS, max_len=10)
    greedy_scores = sequence_log_prob(model, src, greedy, BOS, PAD)
    beams = beam_search(model, src, BOS, EOS, max_len=10, beam_size=5, alpha=0.0, n_best=3)
    for i, hyps in enumerate(beams):
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        assert hyps[0].log_prob >= float(greedy_scores[i]) - 1e-4
        # the reported score is the model's own log-probability of those tokens
        best = torch.tensor([hyps[0].tokens])
        assert float(sequence_log_prob(model, src[i : i + 1], best, BOS, PAD)) == pytest.approx(hyps[0].log_prob, abs=1e-3)


def test_beam_search_batched_equals_one_sentence_at_a_time():
    model = train_reverse_copy("transformer", steps=60)
    src, _, _ = toy_batch(n=5, seed=4)
    together = beam_search(model, src, BOS, EOS, max_len=10, beam_size=4, alpha=0.6)
    for i in range(src.size(0)):
        row = src[i : i + 1, : int(src[i].ne(PAD).sum())]
        alone = beam_search(model, row, BOS, EOS, max_len=10, beam_size=4, alpha=0.6)
        assert alone[0][0].tokens == together[i][0].tokens


@pytest.mark.parametrize("attention", sorted(TRANSFORMER_ATTENTION))
def test_beam_search_with_the_cache_equals_recomputation(attention):
    """Beam search reorders the cache every step (the copy deferred to the next append): the
    n-best lists must equal those of a decoder that recomputes every prefix."""
    torch.manual_seed(0)
    model = TransformerSeq2Seq(V, V, TRANSFORMER_ATTENTION[attention], SinusoidalPositionalEncoding, PAD, d_model=32, d_ff=64, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0).eval()
    src, _, _ = toy_batch(n=5, seed=2)
    results = {}
    for incremental in (True, False):
        model.incremental = incremental
        with torch.no_grad():
            results[incremental] = beam_search(model, src, BOS, EOS, max_len=12, beam_size=4, alpha=0.6, n_best=3)
    for cached, full in zip(results[True], results[False]):
        assert [h.tokens for h in cached] == [h.tokens for h in full]
        assert [h.log_prob for h in cached] == pytest.approx([h.log_prob for h in full], abs=1e-4)


def test_beam_search_rejects_bad_sizes():
    model = build("rnn", "dot").eval()
    src, _, _ = toy_batch(n=2)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, BOS, EOS, max_len=5, beam_size=2, n_best=3)


def test_reordering_the_cache_moves_rows_in_place_and_consumes_the_state():
    """Beam search's reorder moves the changed rows inside the cache's buffer; the reordered
    state refuses reuse, since its positions may have been overwritten."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, num_heads=2)
    h = torch.randn(4, 3, 16)
    with torch.no_grad():
        first = attn.extend_memory(None, attn.project_memory(h[:, :1], h[:, :1]))
        grown = attn.extend_memory(first, attn.project_memory(h[:, 1:2], h[:, 1:2], offset=1))  # (B, H, 2, dh) in a room
        room, buffer = grown.room, grown.keys.untyped_storage().data_ptr()
        expected_keys = grown.keys.index_select(0, torch.tensor([2, 1, 2, 0]))
        reordered = grown.index_select(torch.tensor([2, 1, 2, 0]))
        with pytest.raises(RuntimeError, match="reordered already"):
            attn.extend_memory(grown, attn.project_memory(h[:, 2:], h[:, 2:], offset=2))
        new = attn.project_memory(h[:, 2:], h[:, 2:], offset=2)
        extended = attn.extend_memory(reordered, new)
    assert extended.room is room and extended.keys.untyped_storage().data_ptr() == buffer  # no new buffer
    torch.testing.assert_close(extended.keys[:, :, :2], expected_keys)
    torch.testing.assert_close(extended.keys[:, :, 2:], new.keys)
    with pytest.raises(RuntimeError, match="reordered already"):
        grown.index_select(torch.tensor([0, 1, 2, 3]))

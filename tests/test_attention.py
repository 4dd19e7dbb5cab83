"""The attention types' math: reference equality, masking, fused vs math, chunking."""

import math

import pytest
import torch
from torch import nn

from attnlab.dropout import dropout_implementation
from attnlab.attention import (
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
    NoAttention,
    PositionHook,
    causal_mask,
)

B, T, S, D = 3, 5, 7, 16


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make(kind: str, **kw):
    if kind == "multihead":
        return MultiHeadAttention(D, num_heads=4, **kw)
    if kind in DotProductAttention.SCORES:
        return DotProductAttention(D, score=kind, **kw)
    if kind == "additive":
        return AdditiveAttention(D, d_attn=8, **kw)
    raise KeyError(kind)


KINDS = ["multihead", "dot", "general", "scaled", "additive"]


def inputs():
    q = torch.randn(B, T, D)
    kv = torch.randn(B, S, D)
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[0, 5:] = True
    pad[2, 3:] = True
    return q, kv, pad


def copy_into_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(D, ours.num_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_equals_torch_with_padding_mask(need_weights):
    ours = make("multihead").eval()
    ref = copy_into_torch_mha(ours)
    q, kv, pad = inputs()
    out, w = ours(q, kv, kv, key_padding_mask=pad, need_weights=need_weights)
    ref_out, ref_w = ref(q, kv, kv, key_padding_mask=pad, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    if need_weights:
        torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_equals_torch_with_causal_mask(need_weights):
    ours = make("multihead").eval()
    ref = copy_into_torch_mha(ours)
    x = torch.randn(B, T, D)
    mask = causal_mask(T)
    out, _ = ours(x, x, x, attn_mask=mask, need_weights=need_weights)
    ref_out, _ = ref(x, x, x, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_and_math_paths_agree_and_weights_are_distributions(kind):
    attn = make(kind).eval()
    q, kv, pad = inputs()
    fused, none = attn(q, kv, kv, key_padding_mask=pad, need_weights=False)
    math_out, w = attn(q, kv, kv, key_padding_mask=pad, need_weights=True)
    assert none is None
    torch.testing.assert_close(fused, math_out, atol=1e-5, rtol=1e-5)
    assert w.shape == (B, attn.num_heads, T, S)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, attn.num_heads, T))


@pytest.mark.parametrize("num_kv_heads", [4, 1])
def test_training_dropout_on_cpu_drops_the_weights_with_attnlabs_draws(num_kv_heads):
    """SDPA on a CPU would draw PyTorch's bernoulli_ per weight: attnlab takes the explicit path with
    its own packed dropout, the very numbers of the weights seen with need_weights=True."""
    attn = MultiHeadAttention(D, num_heads=4, num_kv_heads=num_kv_heads, dropout=0.3).train()
    q, kv, pad = inputs()
    torch.manual_seed(7)
    fast, none = attn(q, kv, kv, key_padding_mask=pad)
    torch.manual_seed(7)
    explicit, weights = attn(q, kv, kv, key_padding_mask=pad, need_weights=True)
    assert none is None
    torch.testing.assert_close(fast, explicit)
    torch.manual_seed(7)
    with dropout_implementation("native"):  # PyTorch's own draws: other elements dropped
        native, _ = attn(q, kv, kv, key_padding_mask=pad)
    assert not torch.allclose(native, fast)
    no_dropout, _ = attn.eval()(q, kv, kv, key_padding_mask=pad)
    assert not torch.allclose(no_dropout, fast)  # the weights were dropped


@pytest.mark.parametrize("kind", KINDS)
def test_masked_keys_get_zero_weight_and_their_content_is_ignored(kind):
    attn = make(kind).eval()
    q, kv, pad = inputs()
    out, w = attn(q, kv, kv, key_padding_mask=pad, need_weights=True)
    assert torch.all(w.masked_select(pad[:, None, None, :].expand_as(w)) == 0)
    scrambled = kv.clone()
    scrambled[pad] = torch.randn(int(pad.sum()), D) * 100
    for need_weights in (False, True):
        out2, _ = attn(q, scrambled, scrambled, key_padding_mask=pad, need_weights=need_weights)
        torch.testing.assert_close(out2, out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_boolean_mask_hides_keys_as_if_they_were_not_there(kind):
    attn = make(kind).eval()
    x = torch.randn(B, T, D)
    for need_weights in (False, True):  # the fused path and the math path
        masked, _ = attn(x, x, x, attn_mask=causal_mask(T), need_weights=need_weights)
        for t in range(T):  # position t sees keys 0..t: the same as attending over those alone
            alone, _ = attn(x[:, t : t + 1], x[:, : t + 1], x[:, : t + 1])
            torch.testing.assert_close(masked[:, t], alone[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_float_mask_is_added_to_the_scores(kind):
    """softmax(s + m) = softmax(s) * exp(m), renormalised: whatever the score function is."""
    attn = make(kind).eval()
    x = torch.randn(B, T, D)
    bias = torch.randn(T, T)
    _, plain = attn(x, x, x, need_weights=True)
    _, biased = attn(x, x, x, attn_mask=bias, need_weights=True)
    expected = plain * bias.exp()
    torch.testing.assert_close(biased, expected / expected.sum(-1, keepdim=True), atol=1e-5, rtol=1e-4)
    out, _ = attn(x, x, x, attn_mask=bias)  # the fused path adds the same bias
    torch.testing.assert_close(out, attn(x, x, x, attn_mask=bias, need_weights=True)[0], atol=1e-5, rtol=1e-5)


def test_dot_scores_follow_luong():
    q, kv, _ = inputs()
    for score in ("dot", "general", "scaled"):
        attn = make(score).eval()
        _, w = attn(q, kv, kv, need_weights=True)
        keys = attn.key_proj(kv) if score == "general" else kv
        scale = 1 / math.sqrt(D) if score == "scaled" else 1.0
        expected = torch.softmax(q @ keys.transpose(1, 2) * scale, dim=-1)
        torch.testing.assert_close(w.squeeze(1), expected)
    with pytest.raises(ValueError, match="attention.score"):
        DotProductAttention(D, score="cosine")


def test_additive_chunked_equals_unchunked_and_explicit_loop():
    whole = AdditiveAttention(D, d_attn=8, max_chunk_elements=None).eval()
    chunked = AdditiveAttention(D, d_attn=8, max_chunk_elements=B * S * 8)  # one query row a chunk
    chunked.load_state_dict(whole.state_dict())
    q, kv, pad = inputs()
    q.requires_grad_(True)
    out_w, w_w = whole(q, kv, kv, key_padding_mask=pad, need_weights=True)
    out_c, w_c = chunked(q, kv, kv, key_padding_mask=pad, need_weights=True)
    torch.testing.assert_close(out_c, out_w)
    torch.testing.assert_close(w_c, w_w)
    # gradients through the recomputed chunks match too
    g_w = torch.autograd.grad(out_w.sum(), q)[0]
    g_c = torch.autograd.grad(out_c.sum(), q)[0]
    torch.testing.assert_close(g_c, g_w)
    # the explicit double loop of Bahdanau et al.: e_ti = vᵀ tanh(W_q q_t + W_k k_i)
    with torch.no_grad():
        b = 1
        e = torch.empty(T, S)
        for t in range(T):
            for i in range(S):
                e[t, i] = whole.energy(torch.tanh(whole.query_proj(q[b, t]) + whole.key_proj(kv[b, i])))
        e = e.masked_fill(pad[b], float("-inf"))
        alpha = torch.softmax(e, dim=-1)
        torch.testing.assert_close(w_w[b, 0], alpha)
        torch.testing.assert_close(out_w[b], alpha @ kv[b])


def test_additive_self_attention_runs_at_length_256_within_chunk_budget():
    budget = 2**20
    attn = AdditiveAttention(32, max_chunk_elements=budget)
    x = torch.randn(2, 256, 32, requires_grad=True)
    seen = []
    original = attn._score_rows

    def spy(q, k):
        seen.append(q.size(0) * q.size(1) * k.size(1) * attn.d_attn)
        return original(q, k)

    attn._score_rows = spy
    out, _ = attn(x, x, x, attn_mask=causal_mask(256))
    out.sum().backward()
    assert out.shape == (2, 256, 32)
    assert max(seen) <= budget and len(seen) >= 2 * 256 * 256 * 32 // budget


def test_no_attention_returns_the_final_real_state():
    attn = NoAttention(D)
    q, kv, pad = inputs()
    out, w = attn(q, kv, kv, key_padding_mask=pad, need_weights=True)
    last = torch.tensor([4, S - 1, 2])
    for b in range(B):
        assert torch.equal(out[b], kv[b, last[b]].expand(T, D))
        assert torch.equal(w[b, 0, :, last[b]], torch.ones(T))
    assert not attn.allows_self_attention


def test_multihead_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="attention.num_heads=3"):
        MultiHeadAttention(16, num_heads=3)


class ConstantBias(PositionHook):
    """A toy in-attention positional encoding: penalise attending far back."""

    def bias(self, q_len, k_len, q_offset, device, num_heads):
        qpos = torch.arange(q_offset, q_offset + q_len, device=device)[:, None]
        return -(qpos - torch.arange(k_len, device=device)[None, :]).abs().float()


@pytest.mark.parametrize("kind", KINDS)
def test_position_hook_bias_reaches_the_scores(kind):
    plain = make(kind).eval()
    hooked = make(kind, position_hook=ConstantBias()).eval()
    hooked.load_state_dict(plain.state_dict())
    x = torch.randn(B, T, D)
    _, w_plain = plain(x, x, x, need_weights=True)
    _, w_hooked = hooked(x, x, x, need_weights=True)
    fused, _ = hooked(x, x, x)
    math_out, _ = hooked(x, x, x, need_weights=True)
    torch.testing.assert_close(fused, math_out, atol=1e-5, rtol=1e-5)
    # with the bias, the diagonal (distance 0) gains weight relative to the plain scores
    assert not torch.allclose(w_plain, w_hooked)
    diag = torch.arange(T)
    assert (w_hooked[..., diag, diag] - w_plain[..., diag, diag]).mean() > 0

"""The attention kinds after 2019 — local, linear (elu, favor), mla, differential — each against its
reference (a paper's formula, or multi-head attention on the same weights), with the tolerance
stated; their caches; causality and cached sampling in the LM. (Translation's cached greedy and beam
search: test_decoding; every family through the pipeline, checkpoints included: test_positions,
test_lm, test_text_tasks.)"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from attnlab.attention import (
    DifferentialAttention,
    LatentAttention,
    LinearAttention,
    LocalAttention,
    MultiHeadAttention,
    RecurrentState,
    RingMemory,
    causal_mask,
)
from attnlab.decoding import generate
from attnlab.models import RNNSeq2Seq, TransformerSeq2Seq
from attnlab.positional import ALiBiPositionalEncoding, RotaryPositionalEncoding, SinusoidalPositionalEncoding, T5RelativePositionalBias
from tests.helpers import PAD, V, toy_batch

KINDS = {
    "local": functools.partial(LocalAttention, num_heads=4, window=3),
    "linear": functools.partial(LinearAttention, num_heads=4),
    "favor": functools.partial(LinearAttention, num_heads=4, feature_map="favor", num_features=16),
    "mla": functools.partial(LatentAttention, num_heads=4, kv_latent_dim=8),
    "differential": functools.partial(DifferentialAttention, num_heads=2),
}
POSITIONS = {
    "sinusoidal": SinusoidalPositionalEncoding,
    "rotary": RotaryPositionalEncoding,
    "alibi": ALiBiPositionalEncoding,
    "t5": functools.partial(T5RelativePositionalBias, num_heads=4),
}
SCORELESS = {"linear", "favor"}  # no score matrix: ALiBi and T5 are refused


def combinations():
    for kind in KINDS:
        for pos in POSITIONS:
            if kind in SCORELESS and pos in ("alibi", "t5"):
                continue
            yield kind, pos


def pos_factory(kind: str, pos: str):
    if pos == "t5" and kind == "differential":
        return functools.partial(T5RelativePositionalBias, num_heads=2)
    return POSITIONS[pos]


def copy_projections(src: MultiHeadAttention, dst: MultiHeadAttention) -> None:
    dst.load_state_dict({k: v for k, v in src.state_dict().items()}, strict=False)


# -- local ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("pos", ["none", "rotary", "alibi", "t5"])
def test_local_attention_is_full_attention_under_a_band_mask(causal, pos):
    """Exact reference: multi-head attention with the same weights and the band as its mask; the
    blocked path (T > 2 windows) and the dense path agree with it to 1e-5, padding included."""
    torch.manual_seed(0)
    hook = None if pos == "none" else POSITIONS[pos](d_model=32).attention_hook(causal)
    window, T = 4, 19
    local = LocalAttention(32, num_heads=4, window=window, position_hook=hook).eval()
    full = MultiHeadAttention(32, num_heads=4, position_hook=hook).eval()
    full.load_state_dict(local.state_dict())
    x = torch.randn(3, T, 32)
    pad = torch.zeros(3, T, dtype=torch.bool)
    pad[1, 15:] = True
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    # the window, written out: the previous `window` keys (itself included), or `window` each side
    band = ~((i - j >= 0) & (i - j < window)) if causal else (i - j).abs() > window
    expected, expected_w = full(x, x, x, key_padding_mask=pad, attn_mask=band, need_weights=True)
    blocked, _ = local(x, x, x, key_padding_mask=pad, causal=causal)  # T = 19 > 2 x 4: blocks
    dense, weights = local(x, x, x, key_padding_mask=pad, causal=causal, need_weights=True)
    real = ~pad  # outputs at padding positions are never read
    torch.testing.assert_close(blocked[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights[0], expected_w[0], atol=1e-6, rtol=1e-6)
    assert weights[0][:, band].abs().max() == 0  # nothing outside the window
    assert torch.isfinite(blocked).all() and torch.isfinite(dense).all()  # padding rows keep themselves
    # the rows cut off after the sequence put no NaN into the gradients, through the fused kernel
    # or the explicit softmax (attention dropout on a CPU)
    for p in (0.0, 0.5):
        local.dropout = p
        local.train()
        out, _ = local(x, x, x, key_padding_mask=pad, causal=causal)
        local.zero_grad()
        out[real].sum().backward()
        assert all(torch.isfinite(w.grad).all() for w in local.parameters())


def test_local_decoding_cache_is_a_ring_that_stops_growing():
    torch.manual_seed(0)
    lm = TransformerSeq2Seq.decoder_only(V, KINDS["local"], ALiBiPositionalEncoding, PAD, d_model=32, num_decoder_layers=2, d_ff=64, dropout=0.0, norm="pre").eval()
    tokens = torch.randint(4, V, (2, 20))
    sizes, state, steps = [], lm.start(2), []
    with torch.no_grad():
        full, _ = lm(tokens)
        _, state = lm.step(tokens[:, :5], state)  # a prompt longer than the window
        for t in range(5, 20):
            logits, state = lm.step(tokens[:, t : t + 1], state)
            steps.append(logits)
            sizes.append(sum(c.nbytes for c in state.self_attn))
    assert all(isinstance(c, RingMemory) and c.window == 3 and c.length == 20 for c in state.self_attn)
    assert len(set(sizes)) == 1  # the same bytes after 6 positions as after 20
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 5:], atol=1e-5, rtol=1e-5)


# -- linear -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("feature_map", ["elu", "favor"])
@pytest.mark.parametrize("rotary", [False, True])
def test_linear_attention_three_forms_agree(feature_map, rotary):
    """Katharopoulos et al. eq. 4-9: the chunked causal prefix sums equal the explicit masked,
    normalised φ(Q)φ(K)ᵀ form (with rotary: rotated features in the numerator only, as RoFormer
    3.3), and the recurrent form token by token (an RNN on a d×d state); tolerance 1e-5."""
    torch.manual_seed(0)
    hook = RotaryPositionalEncoding(32).attention_hook(True) if rotary else None
    num_features = 16 if feature_map == "favor" else None
    attn = LinearAttention(32, num_heads=4, feature_map=feature_map, num_features=num_features, position_hook=hook, chunk=4).eval()
    x = torch.randn(2, 11, 32)  # 11: not a multiple of the chunk
    parallel, weights = attn(x, x, x, causal=True, need_weights=True)
    # explicit reference, by the formula
    q, k, v = attn._split(attn.q_proj(x), 4), attn._split(attn.k_proj(x), 4), attn._split(attn.v_proj(x), 4)
    qd, kd = attn.features(q, True), attn.features(k, False)
    qn, kn = (hook.rotate(qd, 0), hook.rotate(kd, 0)) if rotary else (qd, kd)
    allowed = ~causal_mask(11)
    numerator = (qn @ kn.transpose(-1, -2)) * allowed
    normaliser = ((qd @ kd.transpose(-1, -2)) * allowed).sum(-1, keepdim=True)
    expected = attn.out_proj((numerator @ v / (normaliser + 1e-6)).transpose(1, 2).reshape(2, 11, 32))
    torch.testing.assert_close(parallel, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 11), atol=1e-5, rtol=1e-5)
    state, outs = None, []
    for t in range(11):
        out, state, _ = attn.step(x[:, t : t + 1], state, t)
        outs.append(out)
    assert isinstance(state, RecurrentState) and state.kv.shape == (2, 4, attn.num_features, 8)
    torch.testing.assert_close(torch.cat(outs, 1), expected, atol=1e-5, rtol=1e-5)


def test_linear_attention_keeps_its_running_sums_in_float32_under_bf16_autocast():
    """A normaliser summed over hundreds of keys in bf16 (8 bits of mantissa) drifts: the sums stay
    float32 inside autocast, and the output stays within bf16's rounding of the float32 one."""
    torch.manual_seed(0)
    attn = LinearAttention(32, num_heads=4).eval()
    x = torch.randn(1, 600, 32)
    exact, _ = attn(x, x, x, causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = attn(x, x, x, causal=True)
        _, state, _ = attn.step(x, None, 0)
    assert state.kv.dtype == state.k_sum.dtype == torch.float32
    torch.testing.assert_close(mixed.float(), exact, atol=3e-2, rtol=3e-2)


def test_linear_attention_over_a_padded_source_equals_the_explicit_form():
    torch.manual_seed(0)
    attn = LinearAttention(32, num_heads=4).eval()
    q, mem = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 4:] = True
    fast, _ = attn(q, mem, mem, key_padding_mask=pad)
    slow, weights = attn(q, mem, mem, key_padding_mask=pad, need_weights=True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert weights[0, :, :, 4:].abs().max() == 0
    changed = mem.clone()
    changed[0, 4:] = 100.0  # what padding holds never matters
    torch.testing.assert_close(attn(q, changed, changed, key_padding_mask=pad)[0], fast, atol=1e-5, rtol=1e-5)


def test_favor_error_against_softmax_falls_as_features_grow():
    """Performer's estimator: φ(q)·φ(k) estimates exp(q·k/√d), so the output approaches softmax
    attention's as num_features grows (mean error over 4 draws of the features)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 24, 16) * 0.5, torch.randn(1, 1, 24, 16) * 0.5, torch.randn(1, 1, 24, 16)
    exact = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
    errors = []
    for m in (4, 32, 256):
        draws = []
        for seed in range(4):
            attn = LinearAttention(16, num_heads=1, feature_map="favor", num_features=m, seed=seed)
            qf, kf = attn.features(q, True), attn.features(k, False)
            approx = (qf @ kf.transpose(-1, -2)) @ v / (qf @ kf.sum(2).unsqueeze(-1))
            draws.append((approx - exact).abs().mean().item())
        errors.append(sum(draws) / len(draws))
    assert errors[0] > 1.5 * errors[1] > 2.25 * errors[2], errors
    assert errors[2] < 0.05, errors


# -- mla ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rotary", [False, True])
def test_mla_absorbed_path_equals_the_plain_path_and_caches_only_the_latent(rotary):
    """DeepSeek-V2 2.1.2: W_UK folded into the query and W_UV into the output give the same
    attention as up-projecting every key and value (1e-5); the cache is the latent (+ the
    decoupled rotary key): (c + d_R) numbers a position against multi-head's 2·d."""
    torch.manual_seed(0)
    hook = RotaryPositionalEncoding(64).attention_hook(True) if rotary else None
    attn = LatentAttention(64, num_heads=4, kv_latent_dim=16, position_hook=hook).eval()
    x = torch.randn(2, 9, 64)
    memory = attn.project_memory(x, x)
    assert memory.keys.shape == (2, 1, 9, 16 + (8 if rotary else 0)) and memory.values is None
    for causal in (False, True):
        plain, w_plain = attn.attend(x, memory, causal=causal, need_weights=True, absorb=False)
        absorbed, w_absorbed = attn.attend(x, memory, causal=causal, need_weights=True, absorb=True)
        torch.testing.assert_close(absorbed, plain, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w_absorbed, w_plain, atol=1e-5, rtol=1e-5)
    mha = MultiHeadAttention(64, num_heads=4)
    assert memory.nbytes <= mha.project_memory(x, x).nbytes / 4


def test_mla_refuses_a_latent_wider_than_the_model():
    with pytest.raises(ValueError, match=r"attention.kv_latent_dim=65 must be in \[1, arch.d_model=64\]"):
        LatentAttention(64, kv_latent_dim=65)


# -- differential -------------------------------------------------------------------------------------
def test_differential_attention_follows_the_papers_equations():
    """Ye et al. 2024 eq. 1-3 written out head by head with loops: (softmax(Q1K1ᵀ/√d) −
    λ softmax(Q2K2ᵀ/√d)) V, λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init, RMSNorm per head,
    × (1 − λ_init), output projection; λ_init = 0.8 − 0.6 exp(−0.3 (l − 1)); tolerance 1e-5."""
    torch.manual_seed(0)
    attn = DifferentialAttention(16, num_heads=2, layer_index=2).eval()  # layer l = 3
    assert attn.lambda_init == pytest.approx(0.8 - 0.6 * math.exp(-0.6))
    x = torch.randn(1, 5, 16)
    out, weights = attn(x, x, x, causal=True, need_weights=True)
    d = 4  # d_model / (2 heads) / 2 maps
    Q, K, Vv = attn.q_proj(x)[0], attn.k_proj(x)[0], attn.v_proj(x)[0]  # (5, 16)
    lam = math.exp(attn.lambda_q1 @ attn.lambda_k1) - math.exp(attn.lambda_q2 @ attn.lambda_k2) + attn.lambda_init
    heads = []
    for h in range(2):
        q1, q2 = Q[:, (2 * h) * d : (2 * h + 1) * d], Q[:, (2 * h + 1) * d : (2 * h + 2) * d]
        k1, k2 = K[:, (2 * h) * d : (2 * h + 1) * d], K[:, (2 * h + 1) * d : (2 * h + 2) * d]
        v = Vv[:, h * 2 * d : (h + 1) * 2 * d]
        future = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
        a1 = torch.softmax((q1 @ k1.T / math.sqrt(d)).masked_fill(future, -math.inf), -1)
        a2 = torch.softmax((q2 @ k2.T / math.sqrt(d)).masked_fill(future, -math.inf), -1)
        torch.testing.assert_close(weights[0, h], a1 - lam * a2, atol=1e-6, rtol=1e-6)
        head = (a1 - lam * a2) @ v  # (5, 2d)
        head = head / torch.sqrt(head.pow(2).mean(-1, keepdim=True) + 1e-5) * attn.head_norm.weight
        heads.append(head * (1 - attn.lambda_init))
    expected = attn.out_proj(torch.cat(heads, -1))
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)


def test_differential_lambda_init_follows_depth_in_a_stack():
    lm = TransformerSeq2Seq.decoder_only(V, KINDS["differential"], SinusoidalPositionalEncoding, PAD, d_model=16, num_decoder_layers=3, d_ff=32)
    assert [layer.self_attn.lambda_init for layer in lm.layers] == pytest.approx([0.2, 0.8 - 0.6 * math.exp(-0.3), 0.8 - 0.6 * math.exp(-0.6)])


# -- the seams ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,pos", list(combinations()))
def test_language_models_are_causal_and_cached_sampling_equals_recomputation(kind, pos):
    torch.manual_seed(0)
    lm = TransformerSeq2Seq.decoder_only(V, KINDS[kind], pos_factory(kind, pos), PAD, d_model=32, num_decoder_layers=2, d_ff=64, dropout=0.0, norm="pre").eval()
    tokens = torch.randint(4, V, (2, 12))
    changed = tokens.clone()
    changed[:, 7:] = torch.randint(4, V, (2, 5))
    with torch.no_grad():
        a, b = lm(tokens)[0], lm(changed)[0]
    torch.testing.assert_close(b[:, :7], a[:, :7], atol=1e-5, rtol=1e-5)  # changing token t never changes earlier outputs
    assert not torch.allclose(b[:, 7:], a[:, 7:])
    prompt = tokens[:, :4]
    assert torch.equal(generate(lm, prompt, 10, temperature=0.0), generate(lm, prompt, 10, temperature=0.0, use_cache=False))


def test_rnns_take_the_kinds_that_read_a_source_and_refuse_local_in_one_line():
    for kind in ("linear", "mla", "differential"):
        model = RNNSeq2Seq(V, V, KINDS[kind], pad_id=PAD, d_model=32, emb_dim=16, dropout=0.0).eval()
        src, tgt_in, _ = toy_batch(n=3)
        logits, _ = model(src, tgt_in)
        assert torch.isfinite(logits).all()
        lm = RNNSeq2Seq.decoder_only(V, KINDS[kind], d_model=32, emb_dim=16, dropout=0.0).eval()
        prompt = torch.randint(4, V, (2, 3))
        assert torch.equal(generate(lm, prompt, 6, temperature=0.0), generate(lm, prompt, 6, temperature=0.0, use_cache=False))
    with pytest.raises(ValueError, match="arch=rnn cannot use attention=local: its window is counted along one sequence"):
        RNNSeq2Seq(V, V, KINDS["local"], pad_id=PAD, d_model=32, emb_dim=16)


def test_positions_a_kind_cannot_take_are_refused_in_one_line():
    for pos in ("alibi", "t5"):
        with pytest.raises(ValueError, match=f"attention=linear cannot use pos_enc={pos}: it adds a bias to every query-key score"):
            TransformerSeq2Seq.decoder_only(V, KINDS["linear"], POSITIONS[pos], PAD, d_model=32, num_decoder_layers=1, d_ff=64)


def test_cross_attention_and_pooling_are_not_windowed():
    model = TransformerSeq2Seq(V, V, KINDS["local"], SinusoidalPositionalEncoding, PAD, d_model=32, d_ff=64, num_encoder_layers=1, num_decoder_layers=1)
    assert model.layers[0].cross_attn.cross and not model.layers[0].self_attn.cross
    torch.manual_seed(0)
    cross = model.layers[0].cross_attn.eval()
    q, mem = torch.randn(1, 2, 32), torch.randn(1, 12, 32)
    _, weights = cross(q, mem, mem, need_weights=True)
    assert (weights[0, :, 0] > 0).all()  # the first target position reads all 12 source positions

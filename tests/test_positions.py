"""Positions inside attention (rotary, ALiBi, T5 relative bias) and grouped-query attention."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from attnlab.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention
from attnlab.decoding import generate, greedy_decode
from attnlab.models import RNNSeq2Seq, TransformerSeq2Seq
from attnlab.positional import ALiBiPositionalEncoding, RotaryHook, RotaryPositionalEncoding, T5RelativePositionalBias, alibi_slopes, relative_position_bucket
from tests.helpers import BOS, EOS, PAD, V, toy_batch

IN_ATTENTION = {
    "rotary": RotaryPositionalEncoding,
    "alibi": ALiBiPositionalEncoding,
    "t5": functools.partial(T5RelativePositionalBias, num_heads=4),
}


# -- rotary --------------------------------------------------------------------------------------------
def test_rotary_scores_depend_on_distance_only_and_keep_norms():
    hook = RotaryHook(10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 1, 16, generator=g), torch.randn(1, 2, 1, 16, generator=g)

    def score(i, j):
        return (hook.rotate(q, i) * hook.rotate(k, j)).sum(-1)

    for i, j, shift in ((5, 2, 7), (0, 9, 30), (100, 100, 3)):
        torch.testing.assert_close(score(i, j), score(i + shift, j + shift), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 3))
    x = torch.randn(2, 3, 10, 16, generator=g)
    torch.testing.assert_close(hook.rotate(x, 4).norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hook.rotate(x, 0)[:, :, :1], x[:, :, :1])  # position 0: no rotation


def test_rotary_angles_follow_roformer():
    hook = RotaryHook(10000.0)
    x = torch.zeros(1, 1, 4, 8)
    x[..., 0] = 1.0  # the first pair's first coordinate
    out = hook.rotate(x, 0)  # θ_0 = 1: position p turns it by p radians
    for p in range(4):
        assert out[0, 0, p, 0].item() == pytest.approx(math.cos(p), abs=1e-6)
        assert out[0, 0, p, 4].item() == pytest.approx(math.sin(p), abs=1e-6)


def test_additive_attention_refuses_rotation_and_rnns_refuse_in_attention_positions():
    with pytest.raises(ValueError, match="attention=additive cannot use pos_enc=rotary"):
        AdditiveAttention(16, position_hook=RotaryHook(10000.0))
    for name, pos in IN_ATTENTION.items():
        with pytest.raises(ValueError, match=f"arch=rnn takes pos_enc none, learned or sinusoidal: pos_enc={name} acts inside self-attention"):
            RNNSeq2Seq(V, V, AdditiveAttention, pos, PAD, d_model=16, emb_dim=8)


# -- ALiBi -------------------------------------------------------------------------------------------------
def test_alibi_slopes_are_the_papers():
    assert alibi_slopes(8) == [2 ** -i for i in range(1, 9)]
    assert alibi_slopes(4) == [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]
    # 6 heads: the 4-head slopes, then every other slope of the 8-head sequence
    assert alibi_slopes(6) == [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]


def test_alibi_bias_shape_and_sign():
    bias = ALiBiPositionalEncoding(16).attention_hook().bias(3, 5, 2, torch.device("cpu"), 4)
    assert bias.shape == (1, 4, 3, 5)
    assert bias[0, 0, 0, 2] == 0 and bias[0, 0, 0, 0] == pytest.approx(-2 * 0.25)  # query 2, key 0: distance 2
    assert (bias <= 0).all() and bias[0, 3, 2, 0] == pytest.approx(-4 * 2 ** -8)


# -- T5 ----------------------------------------------------------------------------------------------------
def test_t5_buckets_equal_the_papers_definition():
    # bidirectional, 32 buckets, max distance 128: 16 buckets a direction, 8 of them exact; past
    # that, 8 + floor(log(d / 8) / log(128 / 8) * 8), at most 15 (15: 8 + floor(1.81) = 9;
    # 63: 8 + floor(5.95) = 13); keys after the query add 16 (40: 16 + 8 + floor(4.64) = 28)
    distances = torch.tensor([0, -1, -7, -8, -9, -15, -16, -31, -32, -63, -64, -127, -128, -500, 1, 7, 8, 40, 1000])
    bidirectional = [0, 1, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 15, 15, 17, 23, 24, 28, 31]
    assert relative_position_bucket(distances, bidirectional=True).tolist() == bidirectional
    # causal: 32 buckets for the past, 16 exact, then 16 + floor(log(d / 16) / log(128 / 16) * 16)
    # (31: 16 + floor(5.09) = 21; 63: 16 + floor(10.54) = 26; 127: 16 + floor(15.94) = 31); the future: bucket 0
    causal = [0, 1, 7, 8, 9, 15, 16, 21, 21, 26, 26, 31, 31, 31, 0, 0, 0, 0, 0]
    assert relative_position_bucket(distances, bidirectional=False).tolist() == causal


def test_t5_bias_is_one_learned_table_per_stack():
    model = TransformerSeq2Seq(V, V, functools.partial(MultiHeadAttention, num_heads=4), IN_ATTENTION["t5"], PAD, d_model=32, d_ff=64, num_encoder_layers=2, num_decoder_layers=2)
    tables = [n for n, _ in model.named_parameters() if "table" in n]
    assert tables == ["encoder.pos.table.weight", "pos.table.weight"]  # encoder's and decoder's, shared by their layers
    hooks = [layer.self_attn.position_hook for layer in model.encoder.layers]
    assert hooks[0].owner is hooks[1].owner and not hooks[0].causal and model.layers[0].self_attn.position_hook.causal


# -- every encoding in every family, cached decoding exact ------------------------------------------------
@pytest.mark.parametrize("pos", sorted(IN_ATTENTION))
@pytest.mark.parametrize("attention", ["multihead", "dot", "additive"])
def test_seq2seq_cached_decoding_equals_recomputation(pos, attention):
    if attention == "additive" and pos == "rotary":
        pytest.skip("refused (see above)")
    factory = {"multihead": functools.partial(MultiHeadAttention, num_heads=4), "dot": functools.partial(DotProductAttention, score="scaled"), "additive": functools.partial(AdditiveAttention, d_attn=16)}[attention]
    pos_factory = IN_ATTENTION[pos] if pos != "t5" or attention == "multihead" else functools.partial(T5RelativePositionalBias, num_heads=1)
    torch.manual_seed(0)
    model = TransformerSeq2Seq(V, V, factory, pos_factory, PAD, d_model=32, d_ff=64, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0).eval()
    src, _, _ = toy_batch(n=4)
    model.incremental = True
    cached, _ = greedy_decode(model, src, BOS, EOS, max_len=10)
    model.incremental = False
    full, _ = greedy_decode(model, src, BOS, EOS, max_len=10)
    assert torch.equal(cached, full)
    lm = TransformerSeq2Seq.decoder_only(V, factory, pos_factory, PAD, d_model=32, num_decoder_layers=2, d_ff=64, dropout=0.0, norm="pre").eval()
    prompt = torch.randint(4, V, (2, 4))
    assert torch.equal(generate(lm, prompt, 12, temperature=0.0), generate(lm, prompt, 12, temperature=0.0, use_cache=False))


# -- grouped-query attention ------------------------------------------------------------------------------
def test_gqa_with_all_heads_is_multihead_and_with_one_a_smaller_cache():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, num_heads=4).eval()
    gqa = MultiHeadAttention(32, num_heads=4, num_kv_heads=4).eval()
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(gqa(x, x, x)[0], mha(x, x, x)[0])
    mqa = MultiHeadAttention(32, num_heads=4, num_kv_heads=1).eval()
    fused, _ = mqa(x, x, x)
    math_path, weights = mqa(x, x, x, need_weights=True)
    torch.testing.assert_close(fused, math_path, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 4, 7, 7)
    full, grouped = mha.project_memory(x, x), mqa.project_memory(x, x)
    assert full.keys.numel() == 4 * grouped.keys.numel() and full.values.numel() == 4 * grouped.values.numel()
    with pytest.raises(ValueError, match="attention.num_heads=4 is not a multiple of attention.num_kv_heads=3"):
        MultiHeadAttention(32, num_heads=4, num_kv_heads=3)


@pytest.mark.parametrize("kv", [1, 2])
def test_gqa_decodes_with_its_cache(kv):
    torch.manual_seed(0)
    lm = TransformerSeq2Seq.decoder_only(V, functools.partial(MultiHeadAttention, num_heads=4, num_kv_heads=kv), RotaryPositionalEncoding, PAD, d_model=32, num_decoder_layers=2, d_ff=64, dropout=0.0).eval()
    prompt = torch.randint(4, V, (2, 4))
    assert torch.equal(generate(lm, prompt, 10, temperature=0.0), generate(lm, prompt, 10, temperature=0.0, use_cache=False))
    state = lm.start(2)
    _, state = lm.step(prompt, state)
    assert state.self_attn[0].keys.shape == (2, kv, 4, 8)  # only the key/value heads are cached


# -- through the pipeline -----------------------------------------------------------------------------
PIPELINE = [[f"attention={a}", f"pos_enc={p}"] for a in ("multihead", "dot", "additive") for p in ("rotary", "alibi", "t5") if (a, p) != ("additive", "rotary")]


# the kinds after 2019, in the translation family (the LM and classification families: test_lm, test_text_tasks)
KINDS = [["attention=local", "attention.window=2", "pos_enc=alibi"], ["attention=linear", "pos_enc=rotary"], ["attention=mla", "pos_enc=t5"], ["attention=differential", "pos_enc=rotary"]]


# the T5 bias and multi-query attention train in the slow tier too (each ~7 s; the fast tier has to fit 10 minutes)
SLOW_HERE = [["attention=multihead", "pos_enc=t5"], ["attention=dot", "pos_enc=t5"], ["attention=additive", "pos_enc=t5"], ["attention.num_kv_heads=1"]]


@pytest.mark.parametrize(
    "overrides",
    [pytest.param(o, marks=pytest.mark.slow) if o in SLOW_HERE else o for o in PIPELINE + KINDS + [["attention.num_kv_heads=1"], ["attention.num_kv_heads=2", "pos_enc=rotary"]]],
    ids=lambda o: "-".join(x.split("=")[1] for x in o),
)
def test_every_new_combination_trains(overrides, tmp_path, data_dir):
    from attnlab.run.pipeline import train
    from tests.helpers import compose_config

    result = train(compose_config(tmp_path, overrides, data_dir))
    assert result.status == "ok" and result.global_step == 3 and math.isfinite(result.metrics["test/loss"])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["attention=additive", "pos_enc=rotary"], "attention=additive cannot use pos_enc=rotary: rotary positions rotate queries and keys"),
        (["arch=rnn", "attention=additive", "pos_enc=alibi"], "arch=rnn takes pos_enc none, learned or sinusoidal: pos_enc=alibi acts inside self-attention"),
        (["pos_enc=t5", "pos_enc.num_heads=2"], "pos_enc=t5 has a bias for 2 heads, the attention has 4: set pos_enc.num_heads=4"),
        (["attention.num_kv_heads=3"], "attention.num_heads=4 is not a multiple of attention.num_kv_heads=3"),
    ],
)
def test_impossible_position_settings_are_refused_before_training(overrides, message, tmp_path, data_dir):
    from attnlab.errors import ConfigError
    from attnlab.run.pipeline import train
    from tests.helpers import compose_config

    with pytest.raises(ConfigError, match=message):
        train(compose_config(tmp_path, overrides, data_dir))
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_rotary_tables_made_under_inference_mode_still_train():
    """A validation (or sanity check) before training builds the rotary tables under
    torch.inference_mode(): they must still serve a backward pass afterwards."""
    pos = RotaryPositionalEncoding(32)
    attn = MultiHeadAttention(32, num_heads=4, position_hook=pos.attention_hook(causal=True))
    x = torch.randn(2, 5, 32)
    with torch.inference_mode():
        before = attn(x, x, x, causal=True)[0]
    out = attn(x, x, x, causal=True)[0]
    out.sum().backward()  # failed with "Inference tensors cannot be saved for backward"
    assert attn.q_proj.weight.grad is not None
    torch.testing.assert_close(out.detach(), before)

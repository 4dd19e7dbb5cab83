"""Architectures: every combination trains, causality, the RNN fast path, the encoder heads."""

import pytest
import torch

from attnlab.attention import PositionHook
from attnlab.decoding import greedy_decode
from attnlab.models import MaskedLanguageModel, SequenceClassifier, TransformerEncoder, TransformerSeq2Seq
from attnlab.positional import PositionalEncoding
from tests.helpers import ATTENTION, BOS, EOS, PAD, POSITIONAL, V, build, toy_batch

COMBINATIONS = [
    (arch, attn, pos)
    for arch in ("rnn", "transformer")
    for attn in ("additive", "dot", "multihead")
    for pos in POSITIONAL
] + [("rnn", "none", pos) for pos in POSITIONAL] + [("transformer", attn, "sinusoidal") for attn in ("local", "linear", "mla", "differential")]


def loss_of(model, src, tgt_in, tgt_out):
    logits, _ = model(src, tgt_in)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD)


@pytest.mark.parametrize("arch,attn,pos", COMBINATIONS, ids=lambda x: str(x))
def test_every_combination_overfits_one_batch(arch, attn, pos):
    torch.manual_seed(0)
    model = build(arch, attn, pos)
    src, tgt_in, tgt_out = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(400):
        loss = loss_of(model, src, tgt_in, tgt_out)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        if loss.item() <= 0.1 * first:
            break
    assert loss.item() <= 0.1 * first, f"{arch}/{attn}/{pos}: loss {first:.3f} -> {loss.item():.3f} in {step + 1} steps"


@pytest.mark.parametrize("arch,attn", [("transformer", "multihead"), ("transformer", "additive"), ("transformer", "dot"), ("rnn", "additive")])
def test_decoder_output_at_t_ignores_later_target_tokens(arch, attn):
    torch.manual_seed(0)
    model = build(arch, attn).eval()
    src, tgt_in, _ = toy_batch()
    logits, _ = model(src, tgt_in)
    changed = tgt_in.clone()
    t = 3
    changed[:, t + 1 :] = torch.randint(4, V, changed[:, t + 1 :].shape)
    logits2, _ = model(src, changed)
    torch.testing.assert_close(logits2[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits2[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_padding_content_does_not_change_outputs(arch):
    torch.manual_seed(0)
    model = build(arch, "additive", "learned").eval()
    src, tgt_in, _ = toy_batch()
    logits, _ = model(src, tgt_in)
    # more padding columns (longer S for the whole batch) must change nothing
    wider = torch.cat([src, torch.full((src.size(0), 4), PAD)], dim=1)
    logits2, _ = model(wider, tgt_in)
    torch.testing.assert_close(logits2, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attn", ["additive", "dot", "multihead", "none"])
def test_rnn_fast_path_equals_step_by_step(cell, attn):
    torch.manual_seed(0)
    model = build("rnn", attn, "none", cell=cell, num_layers=2, decoder="luong", input_feeding=False).eval()
    assert not model.decoder.feeds_back
    src, tgt_in, _ = toy_batch()
    encoded = model.encode(src)
    fast, w_fast = model.decoder(tgt_in, model.start(encoded), encoded.padding_mask, need_weights=True)
    slow, w_slow = model.decoder.forward_stepwise(tgt_in, model.start(encoded), encoded.padding_mask, need_weights=True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w_fast, w_slow, atol=1e-5, rtol=1e-5)
    # and the single-token `step` API used by decoding gives the same logits
    state = model.start(encoded)
    logits, _ = model(src, tgt_in)
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = model.step(tgt_in[:, t], state, encoded)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decoder,feeding", [("bahdanau", False), ("luong", True)])
def test_recurrent_decoders_step_equals_teacher_forcing(decoder, feeding):
    torch.manual_seed(0)
    model = build("rnn", "additive", "sinusoidal", decoder=decoder, input_feeding=feeding, bidirectional=True).eval()
    assert model.decoder.feeds_back
    src, tgt_in, _ = toy_batch()
    logits, _ = model(src, tgt_in)
    encoded = model.encode(src)
    state = model.start(encoded)
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = model.step(tgt_in[:, t], state, encoded)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,attn", [("rnn", "additive"), ("rnn", "none"), ("transformer", "multihead"), ("transformer", "dot")])
def test_weights_on_request_do_not_change_results(arch, attn):
    torch.manual_seed(0)
    model = build(arch, attn).eval()
    src, tgt_in, _ = toy_batch()
    plain, none = model(src, tgt_in)
    with_w, weights = model(src, tgt_in, need_weights=True)
    assert none == {}
    torch.testing.assert_close(with_w, plain, atol=1e-5, rtol=1e-5)
    B, S, T = src.size(0), src.size(1), tgt_in.size(1)
    heads = 4 if attn == "multihead" else 1
    layers = 2 if arch == "transformer" else 1
    assert [w.shape for w in weights["cross"]] == [(B, heads, T, S)] * layers
    if arch == "transformer":
        assert [w.shape for w in weights["encoder_self"]] == [(B, heads, S, S)] * 2
        assert [w.shape for w in weights["decoder_self"]] == [(B, heads, T, T)] * 2
    tokens, decoded_w = greedy_decode(model, src, BOS, EOS, max_len=6, need_weights=True)
    plain_tokens, _ = greedy_decode(model, src, BOS, EOS, max_len=6)
    assert torch.equal(tokens, plain_tokens)
    assert decoded_w["cross"][0].shape == (B, heads, tokens.size(1), S)


def test_transformer_rejects_no_attention_and_bad_norm():
    with pytest.raises(ValueError, match="attention=none cannot be used with arch=transformer"):
        build("transformer", "none")
    with pytest.raises(ValueError, match="arch.norm"):
        build("transformer", norm="middle")


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_transformer_norm_variants_and_tied_embeddings(norm):
    model = build("transformer", norm=norm, tie_embeddings=True)
    assert model.generator.weight is model.embed.weight
    assert isinstance(model.final_norm, torch.nn.LayerNorm) == (norm == "pre")
    untied = build("transformer", norm=norm, tie_embeddings=False)
    assert untied.generator.weight is not untied.embed.weight


def test_encoder_is_shared_by_classifier_and_masked_lm():
    torch.manual_seed(0)
    encoder = TransformerEncoder(V, ATTENTION["multihead"], POSITIONAL["learned"], PAD, d_model=32, num_layers=2, d_ff=64)
    mlm = MaskedLanguageModel(encoder)
    src, _, _ = toy_batch()
    assert mlm(src).shape == (*src.shape, V)
    for pooling in ("cls", "mean", "attention"):
        clf = SequenceClassifier(encoder, num_classes=3, pooling=pooling)
        assert clf.encoder is mlm.encoder
        logits = clf(src)
        assert logits.shape == (src.size(0), 3)
        logits.sum().backward()
    assert encoder.embed.weight.grad is not None
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(encoder, 3, pooling="max")


class Alibi(PositionalEncoding):
    """An in-attention encoding defined only here: proves the seam needs no architecture change."""

    class Hook(PositionHook):
        def bias(self, q_len, k_len, q_offset, device, num_heads):
            q = torch.arange(q_offset, q_offset + q_len, device=device)[:, None]
            return -0.5 * (q - torch.arange(k_len, device=device)[None, :]).abs().float()

    def attention_hook(self, causal=False):
        return self.Hook()


def test_in_attention_positional_encoding_plugs_into_the_transformer():
    torch.manual_seed(0)
    model = TransformerSeq2Seq(V, V, ATTENTION["multihead"], Alibi, PAD, d_model=32, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)
    assert model.encoder.layers[0].self_attn.position_hook is not None
    assert model.layers[0].cross_attn.position_hook is None
    src, tgt_in, tgt_out = toy_batch()
    # order matters now even without an additive encoding: permuting the source changes outputs
    logits, _ = model(src[:1, :5], tgt_in[:1])
    logits_perm, _ = model(src[:1, :5].flip(1), tgt_in[:1])
    assert not torch.allclose(logits, logits_perm)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_an_encoder_layer_equals_torchs_with_the_same_weights(norm):
    """Post-norm (the paper: LayerNorm(x + sublayer(x))) and pre-norm (x + sublayer(LayerNorm(x)))
    against nn.TransformerEncoderLayer(norm_first=...), to 1e-5; the other order on the same weights does not match."""
    from attnlab.attention import MultiHeadAttention
    from attnlab.models.transformer import EncoderLayer

    torch.manual_seed(0)
    d, heads, d_ff = 16, 4, 32
    ours = EncoderLayer(d, MultiHeadAttention(d, num_heads=heads), d_ff, 0.0, pre_norm=norm == "pre").eval()
    ref = torch.nn.TransformerEncoderLayer(d, heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm == "pre").eval()
    attn = ours.self_attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        ref.self_attn.out_proj.weight.copy_(attn.out_proj.weight)
        ref.self_attn.out_proj.bias.copy_(attn.out_proj.bias)
        ref.linear1.load_state_dict(ours.feed_forward.net[0].state_dict())
        ref.linear2.load_state_dict(ours.feed_forward.net[3].state_dict())
        for ref_norm, our_norm in ((ref.norm1, ours.attn_block.norm), (ref.norm2, ours.ff_block.norm)):
            our_norm.weight.normal_()  # gains and biases that are not 1 and 0: their place matters
            our_norm.bias.normal_()
            ref_norm.load_state_dict(our_norm.state_dict())
    x = torch.randn(3, 7, d)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    expected = ref(x, src_key_padding_mask=pad)
    torch.testing.assert_close(ours(x, pad)[0][~pad], expected[~pad], atol=1e-5, rtol=1e-5)
    for block in (ours.attn_block, ours.ff_block):  # the same weights, the other order: not torch's
        block.pre_norm = not block.pre_norm
    assert not torch.allclose(ours(x, pad)[0][~pad], expected[~pad], atol=1e-3)

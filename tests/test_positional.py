"""Positional encodings: the paper's formula, the learned table's limit, the attention seam."""

import math

import pytest
import torch

from attnlab.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    SinusoidalPositionalEncoding,
)


def test_sinusoidal_equals_the_papers_formula_at_any_length():
    d = 8
    pe = SinusoidalPositionalEncoding(d)
    length = 600  # longer than the initial table: it must grow
    out = pe(torch.zeros(1, length, d))[0]
    for pos in (0, 1, 17, 599):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert out[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert out[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    shifted = pe(torch.zeros(1, 3, d), offset=17)[0]
    torch.testing.assert_close(shifted, out[17:20])


def test_learned_adds_a_trainable_row_per_position():
    pe = LearnedPositionalEncoding(4, max_len=10)
    x = torch.zeros(2, 6, 4)
    torch.testing.assert_close(pe(x)[1], pe.embedding.weight[:6])
    torch.testing.assert_close(pe(x[:, :2], offset=3)[0], pe.embedding.weight[3:5])
    assert pe.embedding.weight.requires_grad


def test_learned_past_max_len_names_the_key_to_raise():
    pe = LearnedPositionalEncoding(4, max_len=10)
    with pytest.raises(ValueError, match=r"pos_enc.max_len=10; raise pos_enc.max_len to at least 11"):
        pe(torch.zeros(1, 11, 4))
    with pytest.raises(ValueError, match="at least 12"):
        pe(torch.zeros(1, 2, 4), offset=10)


def test_none_is_identity_and_no_encoding_offers_an_attention_hook_yet():
    x = torch.randn(2, 3, 4)
    assert torch.equal(NoPositionalEncoding(4)(x), x)
    for pe in (NoPositionalEncoding(4), LearnedPositionalEncoding(4), SinusoidalPositionalEncoding(4)):
        assert pe.attention_hook() is None

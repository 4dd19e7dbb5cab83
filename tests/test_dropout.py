"""attnlab's dropout: PyTorch's in distribution and scaling, with a quarter of the random draws."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.dropout import Dropout, dropout, dropout_implementation, keep_mask

N = 1 << 20


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_each_element_is_dropped_with_probability_p(p):
    torch.manual_seed(0)
    kept = keep_mask(torch.Size([N]), p, torch.device("cpu")).float()
    sigma = (p * (1 - p) / N) ** 0.5
    assert abs((1 - kept.mean().item()) - p) < 5 * sigma


def test_the_four_elements_of_one_draw_are_independent():
    torch.manual_seed(0)
    p = 0.3
    dropped = ~keep_mask(torch.Size([N]), p, torch.device("cpu"))
    lanes = dropped.view(-1, 4).float()  # the four 16-bit lanes of each 64-bit draw
    for a in range(4):
        assert abs(lanes[:, a].mean().item() - p) < 0.005  # no lane is biased (the sign bit of a draw)
        for b in range(a + 1, 4):
            assert abs((lanes[:, a] * lanes[:, b]).mean().item() - p * p) < 0.004
    # and neighbouring draws are independent too
    assert abs((lanes[:-1, 3] * lanes[1:, 0]).mean().item() - p * p) < 0.004


def test_kept_values_are_scaled_so_the_expectation_is_unchanged():
    torch.manual_seed(0)
    x = torch.full((N,), 2.0)
    y = dropout(x, 0.25)
    assert torch.unique(y).tolist() == pytest.approx([0.0, 2.0 / 0.75])
    assert abs(y.mean().item() - 2.0) < 0.02


def test_the_gradient_passes_through_kept_elements_only_with_the_same_scale():
    torch.manual_seed(0)
    x = torch.randn(64, 33, requires_grad=True)  # not a multiple of four elements
    y = dropout(x, 0.2)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8))
    assert torch.all(x.grad[~kept] == 0)


def test_eval_mode_and_p_zero_return_the_input_and_a_seed_reproduces_the_mask():
    layer = Dropout(0.1)
    x = torch.randn(8, 16)
    assert layer.eval()(x) is x
    assert dropout(x, 0.0) is x
    layer.train()
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    assert torch.equal(a, layer(x))


def test_native_is_pytorchs_own_dropout():
    x = torch.randn(128, 64)
    with dropout_implementation("native"):
        torch.manual_seed(5)
        ours = dropout(x, 0.1)
    torch.manual_seed(5)
    assert torch.equal(ours, F.dropout(x, 0.1))
    with pytest.raises(ValueError, match="must be one of packed, native"):
        with dropout_implementation("fast"):
            pass


def test_bf16_inputs_stay_bf16():
    x = torch.randn(32, 32, dtype=torch.bfloat16)
    assert dropout(x, 0.1).dtype == torch.bfloat16

"""Head gates, head importance, pruning curves and the attention viewer (attnlab.heads).

References: a gate ξ_h on a head's output is the output projection with that head's columns times
ξ_h (every headed mechanism), and Michel et al.'s MHAtt(x) = Σ_h ξ_h Att_h(x) W_o^h + b written out
(multi-head); the importance is the loss's gradient by the gate (finite differences in float64);
entropy and distance are checked against the model's own attention weights.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.attention import DifferentialAttention, LatentAttention, LinearAttention, LocalAttention, MultiHeadAttention
from attnlab.errors import ConfigError
from attnlab.heads import pruning
from attnlab.heads.gates import head_mask, headed_layers, masked_heads, set_head_mask
from attnlab.heads.measures import _Accumulator, measure_heads
from tests.helpers import PAD, build, compose_config, leet, run_tool, toy_batch

D = 32
HEADED = {
    "multihead": lambda: MultiHeadAttention(D, 4),
    "grouped-query": lambda: MultiHeadAttention(D, 4, num_kv_heads=2),
    "local": lambda: LocalAttention(D, 4, window=3),
    "linear": lambda: LinearAttention(D, 4),
    "mla": lambda: LatentAttention(D, 4, kv_latent_dim=8),
    "differential": lambda: DifferentialAttention(D, 4),
}


def head_columns(attn, head: int) -> slice:
    width = attn.d_model // attn.num_heads  # a differential head's output is 2·d_h = d_model / H wide too
    return slice(head * width, (head + 1) * width)


@pytest.mark.parametrize("name", sorted(HEADED))
@pytest.mark.parametrize("causal", [False, True])
def test_a_gate_scales_its_heads_columns_of_the_output_projection(name, causal):
    """W_o (ξ ⊙ concat heads) = (W_o diag ξ) concat heads: the gated output equals the ungated
    attention whose output projection has each head's columns scaled (tolerance 1e-5)."""
    torch.manual_seed(0)
    attn = HEADED[name]().eval()
    x = torch.randn(2, 9, D)
    gate = torch.tensor([1.0, 0.0, 0.5, 1.0])
    reference = copy.deepcopy(attn)
    with torch.no_grad():
        for head, g in enumerate(gate.tolist()):
            reference.out_proj.weight[:, head_columns(attn, head)] *= g
    ungated = attn(x, x, x, causal=causal)[0]
    attn.set_head_gate(gate)
    gated = attn(x, x, x, causal=causal)[0]
    torch.testing.assert_close(gated, reference(x, x, x, causal=causal)[0], atol=1e-5, rtol=1e-5)
    assert (gated - ungated).abs().max() > 1e-3  # the gate did something
    attn.set_head_gate(torch.ones(4))
    torch.testing.assert_close(attn(x, x, x, causal=causal)[0], ungated, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["multihead", "local", "linear"])
def test_gates_hold_in_step_by_step_decoding(name):
    """The cache path (generation, greedy and beam search) gates the heads as the full pass does."""
    torch.manual_seed(1)
    attn = HEADED[name]().eval()
    attn.set_head_gate(torch.tensor([0.0, 1.0, 1.0, 0.25]))
    x = torch.randn(1, 6, D)
    full = attn(x, x, x, causal=True)[0]
    cache, steps = None, []
    for t in range(6):
        out, cache, _ = attn.step(x[:, t : t + 1], cache, t)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_multihead_gates_follow_michel_et_al():
    """MHAtt(x) = Σ_h ξ_h softmax(q_h k_hᵀ / √d_h) v_h W_o^hᵀ + b (Michel et al. 2019, eq. 2), from the
    projection weights alone (tolerance 1e-5)."""
    torch.manual_seed(2)
    attn = MultiHeadAttention(D, 4).eval()
    x = torch.randn(2, 5, D)
    xi = torch.tensor([0.0, 1.0, 0.3, 1.0])
    attn.set_head_gate(xi)
    out = attn(x, x, x)[0]
    dh = D // 4
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    expected = attn.out_proj.bias.expand_as(out).clone()
    for h in range(4):
        cols = slice(h * dh, (h + 1) * dh)
        weights = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(dh), dim=-1)
        expected = expected + xi[h] * (weights @ v[..., cols]) @ attn.out_proj.weight[:, cols].T
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_without_gates_an_attention_holds_none():
    """No gate is the default: nothing in the state dict, nothing multiplied."""
    model = build("transformer")
    assert all(a.head_gate is None for attns in headed_layers(model).values() for a in attns)
    assert not any("gate" in key for key in model.state_dict())


# -- task.head_mask -----------------------------------------------------------------------------------
def test_head_mask_forms_give_the_same_gates():
    model = build("transformer")  # 2 encoder and 2 decoder layers of 4 heads
    assert {k: len(v) for k, v in headed_layers(model).items()} == {"encoder_self": 2, "decoder_self": 2, "cross": 2}
    listed = head_mask(["cross.1.2", "encoder_self.0"], model)
    mapped = head_mask({"cross": [[1, 1, 1, 1], [1, 1, 0, 1]], "encoder_self": [[0, 0, 0, 0], [1, 1, 1, 1]]}, model)
    for kind in listed:
        torch.testing.assert_close(listed[kind], mapped[kind])
    assert masked_heads(listed) == ["encoder_self.0.0", "encoder_self.0.1", "encoder_self.0.2", "encoder_self.0.3", "cross.1.2"]
    set_head_mask(model, listed)
    assert model.layers[1].cross_attn.head_gate.tolist() == [1.0, 1.0, 0.0, 1.0]
    set_head_mask(model, None)
    assert model.layers[1].cross_attn.head_gate is None


@pytest.mark.parametrize(
    "value, fragment",
    [
        ({"cross": [[1, 0]]}, "task.head_mask.cross must be 2 rows (layers) of 4 gates (heads), as cross attention has"),
        (["encoder_self", "decoder_self", "cross"], "switches off every head of this model (encoder_self 2×4, decoder_self 2×4, cross 2×4)"),
        (["pooling.0"], "has no headed attention 'pooling'; it has encoder_self 2×4, decoder_self 2×4, cross 2×4"),
        (["cross-1"], "task.head_mask[0]='cross-1' must be KIND, KIND.LAYER or KIND.LAYER.HEAD"),
        (["cross.2"], "cross has layers 0–1"),
        (["cross.0.4"], "cross has heads 0–3"),
        ({"cross": [[1, 1, 1, float("nan")], [1, 1, 1, 1]]}, "task.head_mask.cross[0][3]=nan must be a number in [0, 1]"),
        ({"cross": [[1, 1, 1, 2], [1, 1, 1, 1]]}, "must be a number in [0, 1]"),
        (3, "task.head_mask=3 must be null, a list of heads to switch off"),
    ],
)
def test_a_bad_head_mask_is_one_line_naming_the_key(value, fragment):
    with pytest.raises(ConfigError) as info:
        head_mask(value, build("transformer"))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_model_without_heads_says_so():
    with pytest.raises(ConfigError, match="has no attention heads to gate: its attention \\(attention=additive\\) has no heads"):
        head_mask(["cross.0"], build("rnn", "additive"))


# -- importance, entropy, distance ----------------------------------------------------------------
class ToyTask(nn.Module):
    """What measure_heads asks of a task: the model, a loss of a batch, the batch's size key."""

    batch_key = "src"

    def __init__(self, model):
        super().__init__()
        self.model = model

    def loss(self, batch):
        logits, _ = self.model(batch["src"], batch["tgt_in"])
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["tgt_out"].reshape(-1), ignore_index=PAD)


def toy_task(dtype=torch.float32):
    torch.manual_seed(3)
    task = ToyTask(build("transformer")).to(dtype)
    src, tgt_in, tgt_out = toy_batch(6)
    return task, {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


def test_importance_is_the_gradient_of_the_loss_by_the_gate():
    """One batch: I_h = |∂L/∂ξ_h|, checked by central differences in float64 (tolerance 1e-6)."""
    task, batch = toy_task(torch.float64)
    stats = measure_heads(task, [batch])
    layers = headed_layers(task.model)
    for kind, layer, head in [("encoder_self", 0, 1), ("cross", 1, 3), ("decoder_self", 1, 0)]:
        attn = layers[kind][layer]
        losses = []
        for sign in (1, -1):
            gate = torch.ones(4, dtype=torch.float64)
            gate[head] += sign * 1e-5
            attn.set_head_gate(gate)
            with torch.no_grad():
                losses.append(float(task.eval().loss(batch)))
        attn.set_head_gate(None)
        numeric = abs(losses[0] - losses[1]) / 2e-5
        assert stats.raw_importance[kind][layer, head] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    for grid in stats.importance.values():  # normalised per layer (Michel et al.): unit L2 norm per row
        np.testing.assert_allclose(np.linalg.norm(grid, axis=-1), 1.0, rtol=1e-9)
    assert all(p.requires_grad and p.grad is None for p in task.parameters())  # the model is as it was
    assert all(a.head_gate is None and a.weights_sink is None for attns in layers.values() for a in attns)


def test_entropy_and_distance_are_those_of_the_models_own_weights():
    task, batch = toy_task()
    stats = measure_heads(task, [batch])
    with torch.no_grad():
        _, weights = task.model(batch["src"], batch["tgt_in"], need_weights=True)
    real = batch["src"].ne(PAD)  # (B, S): the encoder's queries that are not padding
    w = weights["encoder_self"][1]  # (B, H, S, S)
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1)  # (B, H, S)
    S = w.size(-1)
    gap = (torch.arange(S)[:, None] - torch.arange(S)[None, :]).abs().float()
    distance = (w * gap).sum(-1)
    keep = real[:, None, :].float()
    np.testing.assert_allclose(stats.entropy["encoder_self"][1], ((entropy * keep).sum((0, 2)) / keep.sum((0, 2))).numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats.distance["encoder_self"][1], ((distance * keep).sum((0, 2)) / keep.sum((0, 2))).numpy(), rtol=1e-5)


def test_accumulator_on_known_maps():
    """Uniform over 4 keys: entropy log 4; the identity: entropy 0 and distance 0; padding queries
    of a self-attention are left out; negative weights (differential) give no entropy."""
    acc = _Accumulator(heads=2, pooling=False)
    uniform = torch.full((1, 1, 4, 4), 0.25)
    identity = torch.eye(4)[None, None]
    acc(torch.cat([uniform, identity], 1), torch.tensor([[False, False, False, True]]))
    entropy, distance = acc.result()
    np.testing.assert_allclose(entropy, [math.log(4), 0.0], atol=1e-6)
    np.testing.assert_allclose(distance, [(1.5 + 1.0 + 1.0) / 3, 0.0], atol=1e-6)  # rows 0-2: mean |i - j| = 1.5, 1, 1
    acc(torch.full((1, 2, 4, 4), -0.1), None)
    assert acc.result() == (None, None)


def test_roles_count_where_each_query_looks_most():
    """Voita et al.'s positional heads: the share of (real) queries whose top key is i - 1, i + 1, the first."""
    acc = _Accumulator(heads=2, pooling=False, self_attention=True)
    previous = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0.8, 0.2, 0], [0, 0, 0.7, 0.3]])  # row 0 has no previous token
    following = torch.tensor([[0.1, 0.9, 0, 0], [0, 0.2, 0.8, 0], [0, 0, 0.3, 0.7], [0, 0, 0, 1.0]])
    acc(torch.stack([previous, following])[None], torch.tensor([[False, False, False, False]]))
    shares = acc.role_shares()
    np.testing.assert_allclose(shares["previous"], [0.75, 0.0])
    np.testing.assert_allclose(shares["next"], [0.0, 0.75])
    np.testing.assert_allclose(shares["first"], [0.5, 0.0])
    assert _Accumulator(heads=1, pooling=False).role_shares() is None  # cross-attention: positions of two sequences


def test_pruning_order_and_prunable_fraction():
    importance = {"a": np.array([[0.9, 0.1]]), "b": np.array([[0.5, 0.05]])}
    assert pruning.by_importance(importance) == [("b", 0, 1), ("a", 0, 1), ("b", 0, 0), ("a", 0, 0)]
    assert sorted(pruning.random_order(importance, 0)) == sorted(pruning.by_importance(importance))
    metric = pruning.Metric("bleu", True, 1.0)
    assert pruning.prunable([0, 0.1, 0.2, 0.3], [50, 49.5, 48.9, 49.8], metric) == 0.1  # the first drop ends it
    assert pruning.prunable([0, 0.1], [2.0, 2.01], pruning.Metric("loss", False, 0.02)) == 0.1


# -- attnlab-heads and eval.py on a trained checkpoint -----------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A tiny translation model (1 encoder and 1 decoder layer of 4 heads), trained with a head of
    cross-attention switched off for its test."""
    from attnlab.run.pipeline import train

    root = tmp_path_factory.mktemp("heads")
    cfg = compose_config(root, ["trainer.max_epochs=6", "task.scheduler.warmup_steps=5", "task.optimizer.lr=3e-3", "task.head_mask=[cross.0.1]"], data_dir)
    return train(cfg)


def test_train_switches_heads_off_for_the_test_only(trained):
    assert trained.status == "ok" and trained.extras["head_mask"] == ["cross.0.1"]


@pytest.fixture(scope="module")
def heads_report(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("heads_out")
    proc = run_tool("attnlab.cli.heads", ["--ckpt", trained.checkpoint, "--out", out, "--random-orders", "2", "--metric", "loss", "--wandb", "--project", "heads-test"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "heads.json").read_text()), proc


def test_attnlab_heads_reports_every_head_and_the_curves(heads_report):
    out, report, proc = heads_report
    # the tiny model's BLEU is near 0 whatever is pruned: the curve follows the loss (lower is better, 1 % of it)
    metric = report["metric"]
    assert report["task"] == "translation" and metric["name"] == "loss" and not metric["higher_is_better"]
    assert metric["tolerance"] == pytest.approx(0.01 * metric["unpruned"]) and set(report["unpruned_metrics"]) >= {"bleu", "chrf", "loss"}
    assert set(report["kinds"]) == {"encoder_self", "decoder_self", "cross"}
    for info in report["kinds"].values():
        assert (info["layers"], info["heads"]) == (1, 4)
        assert np.linalg.norm(np.array(info["importance"]), axis=-1) == pytest.approx(1.0, rel=1e-5)
        assert all(0 <= e <= math.log(64) for e in info["entropy"][0])
    assert report["kinds"]["cross"]["roles"] is None and set(report["kinds"]["encoder_self"]["roles"]) == {"previous", "next", "first"}
    curve = report["pruning"]
    assert curve["fractions"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert curve["heads_removed"] == [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]
    assert curve["by_importance"][0] == metric["unpruned"] == report["unpruned_metrics"]["loss"]
    assert curve["by_importance"][-1] > metric["unpruned"] + metric["tolerance"]  # 11 of 12 heads off: worse
    assert len(curve["random"]["values"]) == 2 and all(len(v) == 10 for v in curve["random"]["values"])
    assert curve["random"]["low"] <= curve["random"]["mean"] <= curve["random"]["high"]
    assert curve["prunable_by_importance"] in curve["fractions"]
    assert set(curve["per_kind"]) == {"encoder_self", "decoder_self", "cross"} and curve["most_sensitive_kind"] in curve["per_kind"]
    importance = {kind: np.array(info["importance"]) for kind, info in report["kinds"].items()}
    assert report["order"] == [f"{k}.{l}.{h}" for k, l, h in pruning.by_importance(importance)]
    for name in ("heads.png", "pruning.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"prunable within {metric['tolerance']:.3g}: {curve['prunable_by_importance']:.0%} of the heads by importance" in proc.stdout


def test_attnlab_heads_logs_to_wandb(heads_report):
    out, report, _ = heads_report
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    summary = leet(run_dir)["summary"]
    assert summary["heads/prunable_by_importance"] == report["pruning"]["prunable_by_importance"]
    assert summary["heads/unpruned"] == pytest.approx(report["metric"]["unpruned"])


def test_an_eval_with_the_same_heads_off_scores_the_curves_point(trained, heads_report, tmp_path):
    """eval.py with task.head_mask = the first heads of the importance order scores what the
    pruning curve says at that fraction: the two paths switch off the same heads."""
    from attnlab.cli.evaluate import evaluate

    _, report, _ = heads_report
    k = report["pruning"]["heads_removed"][3]
    heads = report["order"][:k]
    cfg = compose_config(tmp_path, [f"ckpt_path={trained.checkpoint}", "split=val", f"task.head_mask=[{','.join(heads)}]"], config_name="eval")
    result = evaluate(cfg)
    assert sorted(result.extras["head_mask"]) == sorted(heads)
    assert result.metrics["val/loss"] == pytest.approx(report["pruning"]["by_importance"][3], rel=1e-6)


# -- the viewer, in a real browser --------------------------------------------------------------------
def test_the_viewer_shows_the_models_weights_in_a_browser(trained, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from attnlab.tasks.checkpoints import load_task
    from tests.browser import browser, show

    page = tmp_path / "view.html"
    texts = ["seven hundred and twelve", "forty"]
    proc = run_tool("attnlab.cli.view", ["--ckpt", trained.checkpoint, *texts, "--out", page])
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert "src=" not in html and "href=" not in html  # nothing to fetch: the page works offline
    driver = browser()
    if driver is None:
        assert not os.environ.get("ATTNLAB_REQUIRE_BROWSER"), "ATTNLAB_REQUIRE_BROWSER is set, and no chromium and chromedriver are installed"
        pytest.skip("no headless browser here (apt-get install chromium chromium-driver); the page was written but not opened")
    try:
        shown = show(driver, page, "cross", 0, 2, 1)
        keys = driver.find_elements(By.CSS_SELECTOR, "#keys .key")
        queries = driver.find_elements(By.CSS_SELECTOR, "#queries .query")
        # the model's own cross-attention of the same greedy translation: layer 0, head 2, output token 1
        maps = load_task(trained.checkpoint).translator.attention_maps(texts[:1])[0]
        assert [k.text for k in keys] == maps["source"]
        assert [q.text for q in queries] == maps["output"]
        np.testing.assert_allclose(shown, maps["weights"]["cross"][0][2][1], atol=1e-6)
        assert sum(shown) == pytest.approx(1.0, abs=1e-5)
        # clicking a thumbnail of the model view picks that head
        driver.find_element(By.CSS_SELECTOR, '.thumb[data-layer="0"][data-head="3"]').click()
        assert Select(driver.find_element(By.ID, "head")).first_selected_option.text == "3"
        Select(driver.find_element(By.ID, "head")).select_by_value("2")
        ActionChains(driver).move_to_element(driver.find_elements(By.CSS_SELECTOR, "#queries .query")[1]).perform()
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched
        shots = Path(os.environ.get("ATTNLAB_SCREENSHOTS", tmp_path))
        assert driver.save_screenshot(str(shots / "viewer.png"))
        assert (shots / "viewer.png").stat().st_size > 10_000
    finally:
        driver.quit()

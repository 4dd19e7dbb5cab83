"""The lesson's second half through the real pipeline: text classification with every encoder,
masked-LM pre-training, fine-tuning from it, fill-mask; what cannot work is refused up front."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.run.pipeline import train
from attnlab.tasks import load_task
from attnlab.tasks.mlm import IGNORE, mask_tokens
from tests.helpers import TINY_ARCH, assert_examples_reproduce_metrics, compose_config, read_metrics, run_eval_cli, run_tool

TOPICS = {
    "animal": "cat dog horse bird fish cow sheep",
    "vehicle": "car bus train truck bicycle boat plane",
    "food": "bread cheese apple soup rice cake egg",
}
FILLER = "the a one this that my your big small old new red".split()


def write_split(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        label = sorted(TOPICS)[i % 3]
        words = rng.sample(FILLER, 3) + rng.sample(TOPICS[label].split(), 2)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return {split: write_split(root / f"{split}.tsv", n, seed) for split, n, seed in (("train", 96, 1), ("val", 24, 2), ("test", 24, 3))}


def text_config(tmp_path, text_data, overrides=(), task="classification"):
    arch = next((o.split("=", 1)[1] for o in overrides if o.startswith("arch=")), "transformer")
    base = [
        f"task={task}", "data=text_files", "data.tokenizer=word", "logger=none",
        *(f"data.corpus.{split}={path}" for split, path in text_data.items()),
        "data.batch_size=16", "data.max_tokens=null", "data.eval_batch_size=32", "trainer.max_epochs=1", "interval_resamples=200",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "~callbacks.progress_bar",
        *TINY_ARCH.get(arch, []),
    ]
    return compose_config(tmp_path, base + list(overrides), tmp_path / "data", tiny=False)


ENCODERS = [
    ["arch=transformer", f"attention={attn}", f"pos_enc={pos}"] for attn in ("multihead", "dot", "additive") for pos in ("none", "learned", "sinusoidal")
] + [["arch=rnn", f"attention={attn}", "pos_enc=none"] for attn in ("none", "additive", "dot", "multihead")] + [["arch=rnn", "arch.cell=lstm", "attention=additive", "pos_enc=none"]] + [
    ["arch=transformer", "attention=local", "pos_enc=t5"], ["arch=transformer", "attention=linear", "pos_enc=sinusoidal"],
    ["arch=transformer", "attention=mla", "pos_enc=rotary"], ["arch=transformer", "attention=differential", "pos_enc=alibi"],
]


@pytest.mark.parametrize("overrides", ENCODERS, ids=lambda o: "-".join(x.split("=")[1] for x in o))
def test_every_encoder_classifies(overrides, tmp_path, text_data):
    result = train(text_config(tmp_path, text_data, overrides))
    assert result.status == "ok" and result.task == "classification" and result.global_step == 6
    for key in ("val/acc", "val/macro_f1", "test/acc", "test/macro_f1", "test/f1/animal"):
        assert 0 <= result.metrics[key] <= 1, key
    assert result.metrics["val/loss"] > 0
    assert_examples_reproduce_metrics(result)  # accuracy, macro-F1 (torchmetrics') and loss from the rows
    out = tmp_path / "out"
    predictions = (out / "test_predictions.txt").read_text().splitlines()
    assert len(predictions) == 24 and set(predictions) <= set(TOPICS)
    # the reported accuracy is the predictions' (the torchmetrics state saw the same examples)
    gold = [line.split("\t")[1] for line in text_data["test"].read_text().splitlines()]
    correct = sum(p == g for p, g in zip(predictions, gold)) / len(gold)
    assert result.metrics["test/acc"] == pytest.approx(correct)
    assert result.report_columns[0] == ["val acc", "val/acc", True]
    assert (out / "confusion_matrix.png").stat().st_size > 1000  # the test's confusion matrix
    kinds = {p.name.split("_example")[0] for p in (out / "heatmaps").glob("*.png")}
    assert kinds == ({"self", "pooling"} if "arch=transformer" in overrides else {"pooling"})


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_poolings(pooling, tmp_path, text_data):
    assert train(text_config(tmp_path, text_data, [f"task.pooling={pooling}"])).status == "ok"


def test_classification_learns_and_the_checkpoint_predicts(tmp_path, text_data):
    cfg = text_config(tmp_path, text_data, ["trainer.max_epochs=12", "task.scheduler.warmup_steps=10", "task.optimizer.lr=3e-3"])
    result = train(cfg)
    assert result.metrics["test/acc"] >= 0.9  # topic words decide the label
    task = load_task(result.checkpoint)
    probs = task.predict(["the old dog and the cat", "my red bus and a plane"])
    assert max(probs[0], key=probs[0].get) == "animal" and max(probs[1], key=probs[1].get) == "vehicle"
    assert sum(probs[0].values()) == pytest.approx(1.0)
    confusion = read_metrics(tmp_path / "out")
    assert confusion["metrics"]["test/macro_f1"] >= 0.9
    # its heads: accuracy as they are switched off, and its attention as a page
    heads = run_tool("attnlab.cli.heads", ["--ckpt", result.checkpoint, "--out", tmp_path / "heads", "--random-orders", "1"])
    assert heads.returncode == 0, heads.stderr[-2000:]
    report = json.loads((tmp_path / "heads" / "heads.json").read_text())
    assert report["metric"] == {"name": "acc", "higher_is_better": True, "tolerance": 0.01, "unpruned": result.metrics["val/acc"]}
    assert list(report["kinds"]) == ["self", "pooling"] and set(report["pruning"]["per_kind"]) == {"self", "pooling"}  # the pooling query's heads too
    assert report["kinds"]["pooling"]["distance"] is None and report["kinds"]["pooling"]["entropy"] is not None  # a query with no position
    view = run_tool("attnlab.cli.view", ["--ckpt", result.checkpoint, "the old dog", "--out", tmp_path / "view.html"])
    assert view.returncode == 0 and '"self"' in (tmp_path / "view.html").read_text()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["attention=none"], "attention=none cannot be used with arch=transformer"),
        (["task.pooling=max"], "task.pooling must be one of cls, mean, attention; got 'max'"),
        (["task.init_from=/nonexistent.ckpt"], "no checkpoint at /nonexistent.ckpt"),
        (["task.pretrained=/nonexistent"], "task.pretrained=/nonexistent: no config.json there"),
        (["task.encoder_lr_scale=0.5", "~task.optimizer.lr"], "task.encoder_lr_scale needs task.optimizer.lr"),
    ],
)
def test_impossible_classification_settings_are_refused(overrides, message, tmp_path, text_data):
    from attnlab.errors import AttnlabError

    with pytest.raises(AttnlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(text_config(tmp_path, text_data, overrides))
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_each_task_refuses_the_other_kind_of_data(tmp_path, text_data):
    cfg = text_config(tmp_path, text_data, task="translation")
    with pytest.raises(ConfigError, match="data=text_files gives text data, but task=translation reads translation data"):
        train(cfg)
    cfg = compose_config(tmp_path / "numbers", ["task=classification", "data=numbers", "logger=none", "data.corpus.train_size=96"], tmp_path / "data", tiny=False)
    with pytest.raises(ConfigError, match="data=numbers gives translation data, but task=classification reads text data"):
        train(cfg)


# -- masked-LM pre-training -------------------------------------------------------------------------
def test_masking_follows_bert():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(10, 1000, (64, 200), generator=g)
    tokens[:, 0], tokens[:, -1] = 2, 3  # <bos> ... <eos>: never chosen
    maskable = (tokens != 2) & (tokens != 3)
    starts = torch.ones_like(tokens, dtype=torch.bool)
    inputs, targets = mask_tokens(tokens, starts, maskable, mask_id=4, random_ids=(10, 1000), generator=torch.Generator().manual_seed(1))
    chosen = targets.ne(IGNORE)
    assert not chosen[~maskable].any()
    assert chosen.float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert torch.equal(targets[chosen], tokens[chosen])
    masked = inputs[chosen].eq(4).float().mean().item()
    kept = inputs[chosen].eq(tokens[chosen]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(0.1 + 0.1 / 990, abs=0.02)
    assert torch.equal(inputs[~chosen], tokens[~chosen])
    again, _ = mask_tokens(tokens, starts, maskable, 4, (10, 1000), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, inputs)  # a seeded generator masks the same way


def test_whole_word_masking_takes_every_piece_of_a_word_and_every_text_gets_one():
    tokens = torch.arange(10, 40).view(3, 10)
    starts = torch.zeros_like(tokens, dtype=torch.bool)
    starts[:, ::3] = True  # words of three pieces
    maskable = torch.ones_like(tokens, dtype=torch.bool)
    for seed in range(20):
        _, targets = mask_tokens(tokens, starts, maskable, 4, (10, 40), mask_prob=0.2, whole_word=True, generator=torch.Generator().manual_seed(seed))
        chosen = targets.ne(IGNORE)
        assert chosen.any(dim=1).all()
        word = torch.cumsum(starts.long(), dim=1)
        for row in range(3):
            for w in word[row].unique():
                pieces = chosen[row][word[row] == w]
                assert pieces.all() or not pieces.any()
    # a text that draws nothing still predicts one token
    _, targets = mask_tokens(tokens, starts, maskable, 4, (10, 40), mask_prob=1e-9, generator=torch.Generator().manual_seed(0))
    assert targets.ne(IGNORE).sum(dim=1).tolist() == [1, 1, 1]


def test_pretrain_fill_mask_and_fine_tune_from_it(tmp_path, text_data):
    mlm = train(text_config(tmp_path / "mlm", text_data, ["trainer.max_epochs=3", "task.scheduler.warmup_steps=5", "task.whole_word=true"], task="mlm"))
    assert mlm.status == "ok" and mlm.task == "mlm" and np.isfinite(mlm.metrics["test/ppl"])
    assert set(mlm.metrics) == {f"{s}/{m}" for s in ("val", "test") for m in ("loss", "acc", "ppl")}
    assert_examples_reproduce_metrics(mlm)  # masked-token accuracy and loss, text by text
    fills = (tmp_path / "mlm" / "out" / "test_fills.txt").read_text().splitlines()
    assert len(fills) == 24 and all("[" in line for line in fills)  # every text had a prediction to show
    task = load_task(mlm.checkpoint)
    (masks,) = task.fill_mask(["the [MASK] and a [MASK]"], top_k=3)
    assert len(masks) == 2 and all(len(m) == 3 for m in masks)
    assert all(p1 >= p2 >= p3 for (_, p1), (_, p2), (_, p3) in masks)
    cli = run_tool("attnlab.cli.fill_mask", ["--ckpt", mlm.checkpoint, "--top-k", "2", "my [MASK] dog"])
    assert cli.returncode == 0, cli.stderr
    (line,) = cli.stdout.splitlines()
    assert line.count("(") == 2
    view = run_tool("attnlab.cli.view", ["--ckpt", mlm.checkpoint, "my [MASK] dog", "--out", tmp_path / "mlm.html"])
    assert view.returncode == 0, view.stderr
    assert '"rows": ["<bos>", "my", "<mask>", "dog", "<eos>"]' in (tmp_path / "mlm.html").read_text()

    # fine-tuning starts from exactly the pre-trained encoder, with its vocabulary
    fine_cfg = text_config(tmp_path / "fine", text_data, [f"task.init_from={mlm.checkpoint}", "task.freeze_encoder=true"])
    fine = train(fine_cfg)
    assert fine.status == "ok"
    tuned = load_task(fine.checkpoint)
    pre = torch.load(mlm.checkpoint, weights_only=True)["state_dict"]
    for name, value in tuned.model.encoder.state_dict().items():
        torch.testing.assert_close(value, pre[f"model.encoder.{name}"])  # frozen: unchanged by training
    assert tuned.hparams.vocab == task.hparams.vocab
    with pytest.raises(ConfigError, match="is a model with arch=transformer"):
        train(text_config(tmp_path / "other", text_data, [f"task.init_from={mlm.checkpoint}", "arch=rnn"]))
    with pytest.raises(ConfigError, match="fine-tuning starts from a masked-LM"):
        train(text_config(tmp_path / "wrong", text_data, [f"task.init_from={fine.checkpoint}"]))


def test_eval_py_reproduces_a_classification_test(tmp_path, text_data):
    result = train(text_config(tmp_path, text_data))
    proc = run_eval_cli([f"ckpt_path={result.checkpoint}", f"paths.log_dir={tmp_path / 'eval'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(next((tmp_path / "eval").rglob("metrics.json")).read_text())
    assert out["task"] == "classification" and out["metrics"]["test/acc"] == pytest.approx(result.metrics["test/acc"])
    # the same examples, so eval.py's run and the training run can be compared example by example
    assert out["extras"]["examples"]["test"]["fingerprint"] == result.extras["examples"]["test"]["fingerprint"]
    bound = out["extras"]["intervals"]["test/acc"]
    assert bound["low"] <= out["metrics"]["test/acc"] <= bound["high"] and bound["method"] == "bootstrap over 24 examples"
    assert "95 % interval [" in proc.stdout  # printed beside each metric it has one for


def test_the_tfidf_svm_baseline_is_a_run_the_encoder_can_be_tested_against(tmp_path, text_data, capsys):
    from omegaconf import OmegaConf

    from attnlab.cli import baseline, compare

    cfg = text_config(tmp_path, text_data)
    result = train(cfg)
    (tmp_path / "out" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / "out" / ".hydra" / "config.yaml")  # as Hydra writes a job's
    assert baseline.main([str(tmp_path / "out"), "--out", str(tmp_path / "svm")]) == 0
    svm = json.loads((tmp_path / "svm" / "metrics.json").read_text())
    # the same test examples, in the same order, under the same labels: a paired test is possible
    assert svm["extras"]["examples"]["test"]["fingerprint"] == result.extras["examples"]["test"]["fingerprint"]
    assert 0.0 <= svm["metrics"]["test/acc"] <= 1.0
    capsys.readouterr()
    assert compare.main([str(tmp_path / "svm"), str(tmp_path / "out"), "--resamples", "200"]) == 0
    table = capsys.readouterr().out
    assert "| test/acc |" in table and "| test/macro_f1 |" in table and "paired bootstrap, 200 resamples of 24 examples" in table

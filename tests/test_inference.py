"""After training: eval.py, the translate CLI, checkpoint averaging, safe loading."""

import json
from pathlib import Path

import pytest
import torch

from attnlab.cli.average import average_checkpoints
from attnlab.errors import CheckpointError
from attnlab.run.pipeline import train
from attnlab.tasks import load_task, read_checkpoint
from tests.helpers import BIN, compose_config, run_cli, run_eval_cli, run_tool

TRANSLATE = BIN / "attnlab-translate"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny transformer trained two epochs, every epoch's checkpoint kept."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = compose_config(tmp, ["trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1", "task.decoding.strategy=beam", "task.decoding.beam_size=3"], data_dir=tmp / "data")
    result = train(cfg)
    return tmp, result


def test_eval_reproduces_the_test_metrics_logged_in_training(trained, tmp_path):
    tmp, result = trained
    proc = run_eval_cli([f"ckpt_path={result.checkpoint}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())
    assert out["status"] == "ok" and out["kind"] == "eval" and out["choices"]["arch"] == "transformer"
    for key in ("test/bleu", "test/chrf", "test/exact_match", "test/loss"):
        assert out["metrics"][key] == pytest.approx(result.metrics[key], abs=1e-6), key
    assert out["extras"]["decoding"]["strategy"] == "beam" and out["extras"]["decoding"]["beam_size"] == 3
    assert out["extras"]["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert out["extras"]["bleu_by_length"]["test"] == result.extras["bleu_by_length"]["test"]
    hyps = Path(out["extras"]["predictions"]).read_text().splitlines()
    assert hyps == (tmp / "out" / "test_hypotheses.txt").read_text().splitlines()


@pytest.mark.slow  # an eval.py process, ~8 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_eval_on_val_with_greedy_override(trained, tmp_path):
    tmp, result = trained
    last_epoch = tmp / "out" / "checkpoints" / "epoch_001.ckpt"  # the weights of the run's final validation
    args = [f"ckpt_path={last_epoch}", "split=val", "decoding.strategy=greedy", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = run_eval_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())
    assert set(out["metrics"]) == {"val/loss", "val/ppl", "val/bleu", "val/chrf", "val/exact_match"}
    assert out["extras"]["decoding"]["strategy"] == "greedy"
    # greedy on val reproduces the run's last validation (which decodes greedily too)
    assert out["metrics"]["val/bleu"] == pytest.approx(result.metrics["val/bleu"], abs=1e-6)
    assert out["metrics"]["val/loss"] == pytest.approx(result.metrics["val/loss"], rel=1e-6)
    hypotheses = Path(out["extras"]["predictions"])
    assert hypotheses.name == "val_hypotheses.txt" and not (hypotheses.parent / "test_hypotheses.txt").exists()


def test_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"x": Evil()}, "state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="cannot be loaded as a weights-only checkpoint"):
        read_checkpoint(bad)


def test_translate_cli_arguments_stdin_beam_and_plot(trained, tmp_path):
    _, result = trained
    ckpt = result.checkpoint
    translator = load_task(ckpt).translator
    sentences = ["veintiún mil", "ciento un millones", "tres"]
    expected = translator.translate(sentences)
    proc = run_cli([TRANSLATE, "--ckpt", ckpt, *sentences, "--plot", tmp_path / "att.png"])  # the console script itself
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
    assert (tmp_path / "att.png").stat().st_size > 1000
    piped = run_tool("attnlab.cli.translate", ["--ckpt", ckpt], input="\n".join(sentences) + "\n")
    assert piped.returncode == 0 and piped.stdout.splitlines() == expected
    beam = run_tool("attnlab.cli.translate", ["--ckpt", ckpt, "--beam", "4", *sentences])
    assert beam.returncode == 0
    assert beam.stdout.splitlines() == translator.translate(sentences, {"strategy": "beam", "beam_size": 4, "alpha": 0.6})
    nbest = run_tool("attnlab.cli.translate", ["--ckpt", ckpt, "--beam", "4", "--n-best", "3", *sentences])
    assert nbest.returncode == 0, nbest.stderr
    lines = [line.split("\t") for line in nbest.stdout.splitlines()]
    assert len(lines) == 9 and all(len(parts) == 2 for parts in lines)
    for i in range(3):
        scores = [float(lines[3 * i + k][0]) for k in range(3)]
        assert scores == sorted(scores, reverse=True)
        assert lines[3 * i][1] == beam.stdout.splitlines()[i]  # the best of the n-best is the 1-best


def test_average_of_checkpoints(trained, tmp_path):
    tmp, _ = trained
    epochs = sorted((tmp / "out" / "checkpoints").glob("epoch_*.ckpt"))
    assert len(epochs) == 2
    out = average_checkpoints(epochs, tmp_path / "avg.ckpt")
    states = [torch.load(p, weights_only=True)["state_dict"] for p in epochs]
    averaged = torch.load(out, weights_only=True)
    for key, value in averaged["state_dict"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
    assert "optimizer_states" not in averaged
    assert load_task(out).translator.translate(["dos"])  # the average is a usable checkpoint
    cli = run_tool("attnlab.cli.average", ["--dir", tmp / "out" / "checkpoints", "--last", "2", "--out", tmp_path / "avg2.ckpt"])
    assert cli.returncode == 0, cli.stderr
    torch.testing.assert_close(torch.load(tmp_path / "avg2.ckpt", weights_only=True)["state_dict"], averaged["state_dict"])
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints(epochs[:1], tmp_path / "x.ckpt")

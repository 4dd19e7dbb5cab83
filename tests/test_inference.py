"""After training: eval.py, the translate CLI, checkpoint averaging, safe loading."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlab.checkpoints import CheckpointError, average_checkpoints, load_translation_task, read_checkpoint
from attnlab.pipeline import train
from tests.helpers import ROOT, compose_config

TRANSLATE = str(Path(sys.executable).with_name("attnlab-translate"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny transformer trained two epochs, every epoch's checkpoint kept."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = compose_config(tmp, ["trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1", "task.decoding.strategy=beam", "task.decoding.beam_size=3"], data_dir=tmp / "data")
    result = train(cfg)
    return tmp, result


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def test_eval_reproduces_the_test_metrics_logged_in_training(trained, tmp_path):
    tmp, result = trained
    proc = run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={result['best_checkpoint']}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())
    for key in ("test/bleu", "test/chrf", "test/exact_match", "test/loss"):
        assert out["metrics"][key] == pytest.approx(result["metrics"][key], abs=1e-6), key
    assert out["decoding"]["strategy"] == "beam" and out["decoding"]["beam_size"] == 3
    assert out["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert out["bleu_by_length"] == result["bleu_by_length"]["test"]
    hyps = Path(out["hypotheses"]).read_text().splitlines()
    assert hyps == (tmp / "out" / "test_hypotheses.txt").read_text().splitlines()


def test_eval_on_val_with_greedy_override(trained, tmp_path):
    _, result = trained
    args = [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={result['best_checkpoint']}", "split=val", "decoding.strategy=greedy", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = run(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())
    assert "val/bleu" in out["metrics"] and out["decoding"]["strategy"] == "greedy"
    assert Path(out["hypotheses"]).name == "val_hypotheses.txt"


def test_eval_names_a_missing_or_foreign_checkpoint(tmp_path):
    proc = run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={tmp_path / 'nope.ckpt'}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert proc.returncode != 0 and f"no checkpoint at {tmp_path / 'nope.ckpt'}" in proc.stderr
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    proc = run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={foreign}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert proc.returncode != 0 and "is not an attnlab translation checkpoint" in proc.stderr


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
    ckpt = result["best_checkpoint"]
    task = load_translation_task(ckpt)
    sentences = ["veintiún mil", "ciento un millones", "tres"]
    expected = task.translate(sentences)
    proc = run([TRANSLATE, "--ckpt", ckpt, *sentences, "--plot", str(tmp_path / "att.png")])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
    assert (tmp_path / "att.png").stat().st_size > 1000
    piped = run([TRANSLATE, "--ckpt", ckpt], input="\n".join(sentences) + "\n")
    assert piped.returncode == 0 and piped.stdout.splitlines() == expected
    beam = run([TRANSLATE, "--ckpt", ckpt, "--beam", "4", *sentences])
    assert beam.returncode == 0
    assert beam.stdout.splitlines() == task.translate(sentences, {"strategy": "beam", "beam_size": 4, "alpha": 0.6})
    nbest = run([TRANSLATE, "--ckpt", ckpt, "--beam", "4", "--n-best", "3", *sentences])
    assert nbest.returncode == 0, nbest.stderr
    lines = [line.split("\t") for line in nbest.stdout.splitlines()]
    assert len(lines) == 9 and all(len(parts) == 2 for parts in lines)
    for i in range(3):
        scores = [float(lines[3 * i + k][0]) for k in range(3)]
        assert scores == sorted(scores, reverse=True)
        assert lines[3 * i][1] == beam.stdout.splitlines()[i]  # the best of the n-best is the 1-best
    missing = run([TRANSLATE, "--ckpt", str(tmp_path / "none.ckpt"), "uno"])
    assert missing.returncode == 2 and "no checkpoint at" in missing.stderr


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
    assert load_translation_task(out).translate(["dos"])  # the average is a usable checkpoint
    cli = run([sys.executable, "-m", "attnlab.checkpoints", "--dir", str(tmp / "out" / "checkpoints"), "--last", "2", "--out", str(tmp_path / "avg2.ckpt")])
    assert cli.returncode == 0, cli.stderr
    torch.testing.assert_close(torch.load(tmp_path / "avg2.ckpt", weights_only=True)["state_dict"], averaged["state_dict"])
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints(epochs[:1], tmp_path / "x.ckpt")

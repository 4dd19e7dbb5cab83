"""The slow tier (`pytest -m slow`): whole command lines, as a user runs them."""

import json

import pytest

from tests.helpers import TINY, run_train_cli

pytestmark = pytest.mark.slow


def test_every_combination_runs_from_the_command_line_with_fast_dev_run(tmp_path):
    """`python train.py arch=A attention=B pos_enc=C ++trainer.fast_dev_run=true`, as one multirun."""
    common = ["++trainer.fast_dev_run=true", "logger=none", f"paths.log_dir={tmp_path / 'logs'}"] + TINY[1:4]
    grid = run_train_cli(["-m", "arch=rnn,transformer", "attention=additive,dot,multihead", "pos_enc=none,learned,sinusoidal", *common], cwd=tmp_path, timeout=1800)
    assert grid.returncode == 0, grid.stderr[-3000:]
    baseline = run_train_cli(["-m", "arch=rnn", "attention=none", "pos_enc=none,learned,sinusoidal", *common], cwd=tmp_path, timeout=600)
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "logs").rglob("metrics.json")]
    combos = {(r["choices"]["arch"], r["choices"]["attention"], r["choices"]["pos_enc"]) for r in results}
    assert len(results) == 21 and len(combos) == 21
    assert all(r["status"] == "ok" and "test/bleu" in r["metrics"] for r in results)


def test_seeded_cli_runs_are_reproducible(tmp_path):
    args = TINY + ["arch.d_model=32", "arch.d_ff=64", "trainer.max_epochs=2", "seed=5"]
    runs = []
    for name in ("a", "b"):
        proc = run_train_cli(args + [f"paths.log_dir={tmp_path / name}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(next((tmp_path / name).rglob("metrics.json")).read_text())["metrics"])
    assert runs[0] == runs[1]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_positions_inside_attention_run_from_the_command_line_in_every_task(tmp_path):
    """Every new pos_enc x attention through `train.py -m ... ++trainer.fast_dev_run=true`, in the
    encoder-decoder, the encoder (classification) and the decoder-only LM; the one impossible
    pair (additive x rotary) is refused in its job with the reason, and the sweep goes on."""
    common = ["++trainer.fast_dev_run=true", "logger=none", "attention=additive,dot,multihead", "pos_enc=rotary,alibi,t5"]
    labelled = [f"{w} the {x}\t{w}" for w in ("cat", "car", "bread") for x in ("red", "old", "big", "one")]
    stream = ["once upon a time there was a cat who sat on the mat."] * 12
    tasks = {
        "translation": [*TINY[1:4], "arch.d_model=32", "arch.d_ff=64"],
        "classification": ["task=classification", "data=text_files", "data.tokenizer=word", "arch.d_model=32", "arch.d_ff=64"]
        + [f"data.corpus.{s}={_write(tmp_path / f'{s}.tsv', labelled)}" for s in ("train", "val", "test")],
        "lm": ["task=lm", "data=text_stream", "data.block_size=16", "data.batch_size=4", "arch.d_model=32", "arch.d_ff=64", "task.sample_tokens=8"]
        + [f"data.corpus.{s}={_write(tmp_path / f'{s}.txt', stream)}" for s in ("train", "val", "test")],
    }
    for task, args in tasks.items():
        logs = tmp_path / "logs" / task
        proc = run_train_cli(["-m", *common, *args, f"paths.log_dir={logs}"], cwd=tmp_path, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = {(r["choices"]["attention"], r["choices"]["pos_enc"]): r for r in (json.loads(p.read_text()) for p in logs.rglob("metrics.json"))}
        assert len(results) == 9, (task, sorted(results))
        refused = results.pop(("additive", "rotary"))
        assert refused["status"] == "failed" and "attention=additive cannot use pos_enc=rotary" in refused["error"], task
        assert all(r["status"] == "ok" and r["task"] == task and r["metrics"] for r in results.values()), task

"""train.py as a user runs it: a subprocess with W&B offline, read back with `wandb leet`."""

import json

import pytest

from tests.helpers import TINY, TINY_ARCH, leet, run_train_cli


def test_train_cli_logs_an_offline_wandb_run(tmp_path):
    """No WANDB_MODE and no API key anywhere: attnlab itself must choose offline mode."""
    args = [a for a in TINY if a != "logger=none"] + TINY_ARCH["transformer"] + [f"paths.log_dir={tmp_path / 'logs'}", "callbacks.eval_artifacts.attention_view=true"]
    proc = run_train_cli(args, cwd=tmp_path, env_extra={"HOME": str(tmp_path)}, unset=["WANDB_MODE", "WANDB_API_KEY", "NETRC"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/bleu" in proc.stdout and "outputs:" in proc.stdout
    assert "wandb sync" in proc.stdout + proc.stderr
    run_dirs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(run_dirs) == 1
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    offline = list((run_dirs[0] / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    summary = leet(offline[0])
    assert {"val/loss", "val/bleu", "test/bleu"} <= set(summary["summary"])
    assert summary["summary"]["val/bleu"] == pytest.approx(metrics["metrics"]["val/bleu"], rel=1e-6)  # W&B holds float32
    config = summary["config"]
    assert (config["arch"], config["attention"], config["pos_enc"], config["data"], config["task"]) == ("transformer", "multihead", "sinusoidal", "numbers", "translation")
    assert config["task_params"]["optimizer"]["_target_"] == "torch.optim.AdamW"
    assert config["params"] == metrics["params"]
    assert "src_vocab" not in config
    assert summary["name"] == config["run_name"] == "transformer-multihead-sinusoidal-numbers-s42"
    assert summary["state"] == "finished"
    # the opt-in attention viewer: attnlab-view's page of the heatmap example, an HTML panel
    panel = summary["summary"]["val/attention_view"]
    assert panel["_type"] == "html-file"
    page = (offline[0] / "files" / panel["path"]).read_text()
    assert 'id="attention-data"' in page and '"cross"' in page and "src=" not in page

"""Multiruns as a user runs them (subprocesses): W&B runs per job, failures, Optuna, launchers."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import TINY, compose_config, leet, run_tool, run_train_cli

SWEEP_TINY = [a for a in TINY if a != "logger=none"] + ["arch.d_model=32"]


def sweep_dir(log_dir: Path, task_name: str = "train") -> Path:
    dirs = list((log_dir / task_name / "multiruns").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_a_multirun_gives_one_grouped_wandb_run_per_job_and_a_report(tmp_path):
    # two jobs show grouping and no merging as well as four did (the slow tier runs whole grids)
    logs = tmp_path / "logs"
    proc = run_train_cli(["-m", "arch=rnn,transformer", "attention=additive", *SWEEP_TINY, "trainer.log_every_n_steps=1", f"paths.log_dir={logs}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(logs)
    metrics = sorted(sweep.glob("*/metrics.json"))
    assert len(metrics) == 2
    runs = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 2  # one W&B run per job: nothing merged
    summaries = [leet(r) for r in runs]
    combos = {(s["config"]["arch"], s["config"]["attention"]) for s in summaries}
    assert combos == {("rnn", "additive"), ("transformer", "additive")}
    for s in summaries:
        assert f"arch:{s['config']['arch']}" in s["tags"] and f"attention:{s['config']['attention']}" in s["tags"]
        assert s["name"] == s["config"]["run_name"] and s["state"] == "finished"
        images = [k for k, v in s["summary"].items() if k.startswith("val/attention/cross/") and isinstance(v, dict) and v.get("_type") == "image-file"]
        assert images, sorted(s["summary"])
        assert s["summary"]["test/bleu_by_length"]["_type"] == "table-file"
    groups = {re.search(r'"run_group":"([^"]+)"', leet(r, summary=False)).group(1) for r in runs}
    assert groups == {f"train-{sweep.name}"}
    # each run keeps its heatmaps as PNG files too
    assert all(list(p.parent.glob("heatmaps/cross_example_0.png")) for p in metrics)

    # the sweep's W&B dashboard reads exactly keys these runs logged
    spec_file = tmp_path / "dashboard.json"
    dash = run_tool("attnlab.cli.dashboard", ["--entity", "me", "--project", "attnlab", "--group", groups.pop(), "--dry-run", spec_file])
    assert dash.returncode == 0, dash.stderr
    from attnlab.cli.dashboard import logged_keys

    wanted = logged_keys(json.loads(spec_file.read_text()))
    assert wanted["logged"] - {k for s in summaries for k in s["summary"]} == set()
    assert wanted["config"] - {k for s in summaries for k in s["config"]} == set()
    assert {"test/bleu", "test/bleu_by_length", "val/attention/cross/example_0", "train/tokens_per_sec"} <= wanted["logged"]

    report = run_tool("attnlab.cli.report", [sweep])
    assert report.returncode == 0, report.stderr
    text = (sweep / "report.md").read_text()
    table_rows = [line for line in text.splitlines() if re.match(r"\| (rnn|transformer) / ", line) and "BLEU" not in line]
    assert len([r for r in table_rows if r.count("|") > 8]) == 2
    assert (sweep / "bleu_by_length.png").stat().st_size > 1000
    assert (sweep / "attention_grid.png").stat().st_size > 1000


@pytest.mark.slow  # a multirun process, ~9 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_a_failing_job_does_not_stop_the_sweep_and_the_report_names_it(tmp_path):
    logs = tmp_path / "logs"
    args = ["-m", "attention.num_heads=4,3", "logger=none", *SWEEP_TINY, f"paths.log_dir={logs}"]
    proc = run_train_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(logs)
    results = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    assert results["0"]["status"] == "ok" and "test/bleu" in results["0"]["metrics"]
    assert results["1"]["status"] == "failed" and "attention.num_heads=3" in results["1"]["error"]
    report = run_tool("attnlab.cli.report", [sweep])
    assert report.returncode == 0, report.stderr
    text = (sweep / "report.md").read_text()
    assert "1 finished, 1 failed" in text
    failed_section = text.split("## Failed jobs")[1]
    assert "attention.num_heads=3" in failed_section and "not divisible" in failed_section


@pytest.mark.slow
def test_optuna_sweep_returns_a_best_value(tmp_path):
    logs = tmp_path / "logs"
    args = ["hparams_search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2", "logger=none", *SWEEP_TINY, f"paths.log_dir={logs}"]
    proc = run_train_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(logs, "optuna")
    assert len(list(sweep.glob("*/metrics.json"))) == 3
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna"
    best = [json.loads(p.read_text())["metrics"]["val/bleu"] for p in sweep.glob("*/metrics.json")]
    assert result["best_value"] == pytest.approx(max(best))
    # arch.d_model is fixed by the command line (a command-line value wins over a search space)
    assert set(result["best_params"]) == {"task.optimizer.lr", "task.label_smoothing"}


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_directories(tmp_path):
    logs = tmp_path / "logs"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2", "logger=none", *SWEEP_TINY, f"paths.log_dir={logs}"]
    proc = run_train_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep_dir(logs).glob("*/metrics.json")]
    assert sorted(r["seed"] for r in results) == [1, 2]
    assert len({r["output_dir"] for r in results}) == 2


def test_slurm_launcher_config_composes(tmp_path):
    cfg = compose_config(tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.tasks_per_node == 1 and launcher.gpus_per_node == 1
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_ablation_experiment_covers_the_grid_and_the_baseline(tmp_path):
    compose_config(tmp_path, ["experiment=ablation"], tiny=False)
    from hydra.core.hydra_config import HydraConfig

    params = HydraConfig.get().sweeper.params
    combos = params["+arch_attention"].split(",")
    assert len(combos) * len(params["pos_enc"].split(",")) == 14
    assert "rnn_none" in combos and {"transformer_additive", "transformer_dot", "transformer_multihead"} <= set(combos)
    for combo in combos:
        arch, attention = combo.split("_")
        cfg = compose_config(tmp_path, ["experiment=ablation", f"+arch_attention={combo}"], tiny=False)
        assert (cfg.choices.arch, cfg.choices.attention) == (arch, attention)

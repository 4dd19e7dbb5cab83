"""The sweep report from synthetic job directories: aggregation over seeds, failures, plots."""

import json

from attnlab.cli.report import aggregate, load_jobs, main
from attnlab.run.results import RunResult
from attnlab.tasks import TranslationTask


def make_job(root, num, arch, attention, seed, bleu, status="ok", write_metrics=True, legacy=False):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (job / ".hydra" / "overrides.yaml").write_text(f"- arch={arch}\n- attention={attention}\n- seed={seed}\n")
    if not write_metrics:
        (job / "train.log").write_text("starting\nKilled at step 40\n")
        return
    by_length = {"test": [
        {"bucket": "1-5", "min_len": 1, "n": 30, "bleu": bleu},
        {"bucket": "6-10", "min_len": 6, "n": 20, "bleu": bleu / 2},
        {"bucket": "11-15", "min_len": 11, "n": 3, "bleu": 99.0},  # too few sentences to show
    ]}
    result = RunResult(
        status=status, task="translation", choices={"arch": arch, "attention": attention, "pos_enc": "sinusoidal", "data": "numbers"},
        seed=seed, params=1000, run_name=f"{arch}-{attention}-s{seed}", tokens_per_sec=100.0 * seed, wall_time_s=10.0,
        metrics={} if status == "failed" else {"val/bleu": bleu, "test/bleu": bleu - 1, "test/chrf": 50.0, "test/exact_match": 10.0},
        extras={"bleu_by_length": by_length}, report_columns=[list(c) for c in TranslationTask.report_columns],
        error="ConfigError: arch.d_model=30 is not divisible by attention.num_heads=4" if status == "failed" else None,
    )
    if legacy:  # attnlab 0.1's layout: choices and extras at the top level, no report columns
        data = {**result.to_dict(), **result.choices, "bleu_by_length": by_length}
        for key in ("choices", "extras", "report_columns", "task", "kind"):
            data.pop(key)
        (job / "metrics.json").write_text(json.dumps(data))
    else:
        result.write(job)
    (job / "attention_example.json").write_text(json.dumps({"source": ["uno", "<eos>"], "output": ["one", "<eos>"], "weights": [[0.9, 0.1], [0.2, 0.8]]}))


def test_report_aggregates_seeds_and_names_failed_and_killed_jobs(tmp_path):
    make_job(tmp_path, 0, "rnn", "additive", 1, 40.0)
    make_job(tmp_path, 1, "rnn", "additive", 2, 50.0, legacy=True)  # an older sweep's file still reads
    make_job(tmp_path, 2, "transformer", "multihead", 1, 90.0)
    make_job(tmp_path, 3, "transformer", "dot", 1, 0.0, status="failed")
    make_job(tmp_path, 4, "rnn", "none", 1, 0.0, write_metrics=False)
    make_job(tmp_path, 5, "rnn", "dot", 1, 0.0, write_metrics=False)
    (tmp_path / "5" / "metrics.json").write_text('{"status": "ok", "metr')  # cut off mid-write
    jobs = load_jobs(tmp_path)
    assert len(jobs) == 6
    rows = aggregate(jobs)
    assert [r["config"] for r in rows] == ["rnn / additive / sinusoidal", "transformer / multihead / sinusoidal"]
    mean, std = rows[0]["val/bleu"]
    assert mean == 45.0 and round(std, 4) == 7.0711
    assert rows[1]["val/bleu"] == (90.0, None)

    assert main([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "6 jobs: 3 finished, 3 failed." in text
    # two seeds: the mean and its 95 % t-interval (t = 12.71 with one degree of freedom: wide)
    assert "| rnn / additive / sinusoidal | 1,2 | 1,000 | 45.00 [-18.53, 108.53] | 44.00 [-19.53, 107.53] |" in text
    assert "- **test BLEU**: transformer / multihead / sinusoidal (89.00)" in text
    failed = text.split("## Failed jobs")[1]
    assert "transformer-dot-s1" in failed and "not divisible" in failed
    assert "arch=rnn attention=none seed=1" in failed and "Killed at step 40" in failed
    assert f"unreadable {tmp_path / '5' / 'metrics.json'}" in failed  # the corrupt file is named
    assert "| rnn / additive / sinusoidal | 45.0 | 22.5 |" in text  # BLEU by length, mean over seeds
    assert "| configuration | 1-5 | 6-10 |" in text and "11-15" not in text
    assert "Length buckets with fewer than 20 test sentences are left out." in text
    assert (tmp_path / "bleu_by_length.png").stat().st_size > 1000
    assert (tmp_path / "attention_grid.png").stat().st_size > 1000


def test_report_refuses_a_missing_directory(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])
    assert "sweep directory not found" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1  # exists but holds no jobs


def test_report_from_a_wandb_group_maps_runs_to_jobs(monkeypatch, tmp_path):
    """Against a stand-in for wandb.Api (no network here): the fields the report needs."""
    import wandb

    class FakeRun:
        def __init__(self, name, arch, state, bleu):
            self.name, self.state, self.url = name, state, f"https://wandb.invalid/{name}"
            self.config = {"arch": arch, "attention": "additive", "pos_enc": "none", "data": "numbers", "seed": 1, "params": 10}
            self.summary = {"val/bleu": bleu, "test/bleu": bleu, "test/examples": {"_type": "table-file"}, "summary/tokens_per_sec": 5.0, "summary/wall_time_s": 2.0}

    class FakeApi:
        def runs(self, path, filters):
            assert path == "me/attnlab" and filters == {"group": "ablation"}
            return [FakeRun("a", "rnn", "finished", 90.0), FakeRun("b", "transformer", "crashed", 0.0)]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    assert main(["--wandb-group", "me/attnlab/ablation", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "2 jobs: 1 finished, 1 failed." in text
    assert "| rnn / additive / none | 1 | 10 | 90.00 | 90.00 |" in text
    assert "W&B run state: crashed" in text


def test_curve_has_a_line_per_compared_setting_averaged_over_seeds(tmp_path):
    from attnlab.tasks import ClassificationTask

    num = 0
    for source, accs in (("scratch", (0.3, 0.7)), ("mlm", (0.5, 0.8))):
        for size, acc in zip(("500", "null"), accs):
            for seed, delta in ((1, -0.02), (2, 0.02)):
                job = tmp_path / str(num)
                num += 1
                (job / ".hydra").mkdir(parents=True)
                # mlm_checkpoint is the same in every job: it must not name a line
                overrides = [f"+source={source}", f"data.train_size={size}", f"seed={seed}", "mlm_checkpoint=/ckpt/last.ckpt"]
                (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
                (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
                RunResult(
                    status="ok", task="classification", choices={"arch": "transformer", "attention": "multihead", "pos_enc": "learned", "data": "wordnet"},
                    seed=seed, params=10, run_name=f"{source}-{size}-s{seed}", tokens_per_sec=1.0, wall_time_s=1.0,
                    metrics={"val/acc": acc + delta, "test/acc": acc + delta, "test/macro_f1": acc / 2},
                    extras={"data_sizes": {"train": 4000, "val": 100, "test": 100}}, report_columns=[list(c) for c in ClassificationTask.report_columns],
                    overrides=overrides,
                ).write(job)
    assert main([str(tmp_path), "--curve", "data.train_size"]) == 0
    text = (tmp_path / "report.md").read_text().split("## test/acc against data.train_size")[1]
    assert "| | 500 | 4,000 |" in text  # "null" is placed at the whole training split
    assert "| transformer / multihead / learned, source=mlm | 0.50 ± 0.03 | 0.80 ± 0.03 |" in text
    assert "| transformer / multihead / learned, source=scratch | 0.30 ± 0.03 | 0.70 ± 0.03 |" in text
    assert "ckpt" not in text
    assert (tmp_path / "train_size_curve.png").stat().st_size > 1000


def test_attention_grid_names_tokens_on_its_outer_edge_only():
    import numpy as np

    from attnlab import plots

    layers = [np.full((2, 3, 4), 0.25) for _ in range(3)]  # 3 layers x 2 heads, 3 queries x 4 keys
    fig = plots.attention_figure(layers, ["a", "b", "c"], ["w", "x", "y", "z"], "cross attention")
    axes = np.array(fig.axes).reshape(3, 2)
    words = lambda labels: [t.get_text() for t in labels]  # noqa: E731
    for layer in range(3):
        for head in range(2):
            ax = axes[layer, head]
            assert words(ax.get_yticklabels()) == (["a", "b", "c"] if head == 0 else [])
            assert words(ax.get_xticklabels()) == (["w", "x", "y", "z"] if layer == 2 else [])
            assert ax.get_title() == f"layer {layer + 1}, head {head + 1}"
    assert len(plots.render_png(fig)) > 1000

"""Adding a task touches only its own files: a toy task defined in tests/ (tests/toy_task.py and
its configs in tests/conf) trains through train.py, the loggers and callbacks, writes metrics.json,
reloads from its checkpoint and shows up in the sweep report."""

import re

import tests.toy_task  # noqa: F401  (a task's module registers it: then its checkpoints load here too)
from attnlab.tasks import load_task
from tests.helpers import ROOT, read_metrics, run_tool, run_train_cli


def test_a_task_defined_outside_attnlab_trains_through_the_real_pipeline(tmp_path):
    logs = tmp_path / "logs"
    args = [
        "-m", f"hydra.searchpath=[file://{ROOT / 'tests' / 'conf'}]", "task=reverse", "data=reverse",
        "arch=rnn,transformer", "attention=additive", "pos_enc=sinusoidal", "seed=1",
        "logger=csv", "trainer.max_epochs=3", "~callbacks.progress_bar", f"paths.log_dir={logs}",
    ]
    proc = run_train_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (logs / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        result = read_metrics(job)
        assert result["status"] == "ok" and result["task"] == "reverse", result.get("error")
        assert set(result["metrics"]) == {"val/seq_acc", "test/seq_acc"}
        assert result["report_columns"] == [["val acc", "val/seq_acc", True], ["test acc", "test/seq_acc", True]]
        assert result["global_step"] == 12 and result["tokens_per_sec"] > 0
        assert len((job / "test_reversed.txt").read_text().splitlines()) == 16
        assert (job / "csv").is_dir()  # the configured logger ran
        # the best checkpoint is chosen by the task's own metric, and rebuilds through the registry
        (best,) = (job / "checkpoints").glob("epoch_*.ckpt")
        assert result["checkpoint"] == str(best)
        task = load_task(best)
        assert type(task).__name__ == "ReverseTask" and task.hparams.arch["_component_"] == f"arch/{result['choices']['arch']}"

    report = run_tool("attnlab.cli.report", [sweep])
    assert report.returncode == 0, report.stderr
    text = (sweep / "report.md").read_text()
    assert "2 jobs: 2 finished, 0 failed." in text
    assert "| val acc | test acc | tokens/s |" in text
    assert re.search(r"\| rnn / additive / sinusoidal \| 1 \| [\d,]+ \| \d+\.\d\d \| \d+\.\d\d \|", text)
    assert re.search(r"\| transformer / additive / sinusoidal \| 1 \|", text)


def test_attnlab_itself_knows_nothing_of_the_toy_task():
    """The toy task reaches attnlab only by registering itself from tests/: attnlab's own table
    of components names nothing of it, and the registered classes live in tests/."""
    from attnlab import components

    for kind in ("task", "datamodule"):
        assert "reverse" not in components._BUILTIN[kind]
        assert components.lookup(kind, "reverse").__module__ == "tests.toy_task"  # registered, from outside

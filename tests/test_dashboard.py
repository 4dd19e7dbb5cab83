"""attnlab-dashboard: a sweep's W&B workspace or report from code, checked through its dry-run
specification (saving needs W&B online). That its keys are the keys runs log is checked against a
real offline sweep in test_sweeps."""

import json

import pytest

from attnlab.cli import dashboard

pytest.importorskip("wandb_workspaces")


def dry_run(tmp_path, *args, task="translation", kind="workspace"):
    out = tmp_path / f"{task}-{kind}.json"
    code = dashboard.main(["--entity", "me", "--project", "attnlab", "--group", "train-sweep7", "--task", task, "--kind", kind, "--dry-run", str(out), *args])
    assert code == 0
    return json.loads(out.read_text())


def panels_by_type(spec) -> dict:
    found = {}
    for panel in dashboard._panels_of(spec):
        found.setdefault(panel["viewType"], []).append(panel["config"])
    return found


@pytest.mark.parametrize("kind", ["workspace", "report"])
def test_a_translation_sweep_gets_the_lessons_panels_filtered_to_its_group(tmp_path, kind, capsys):
    spec = dry_run(tmp_path, kind=kind)
    panels = panels_by_type(spec)
    bars = {(c["metrics"][0], c["groupBy"]) for c in panels["Bar Chart"]}
    assert bars == {(m, f"{axis}.value") for m in ("val/bleu", "test/bleu") for axis in ("arch", "attention", "pos_enc")}
    assert all(c["groupAgg"] == "mean" and c["groupArea"] == "stderr" for c in panels["Bar Chart"])  # seeds: mean, error bars ± 1 s.e.
    (parallel,) = panels["Parallel Coordinates Plot"]
    assert [c["accessor"] for c in parallel["columns"]] == ["config:arch.value", "config:attention.value", "config:pos_enc.value", "summary:test/bleu"]
    (curve,) = panels["Vega2"]  # the lesson's Fig. 2: BLEU by source length, a line per configuration
    assert list(dashboard._find(curve["userQuery"], "tableKey")) == ["test/bleu_by_length"]
    assert curve["fieldSettings"] == {"x": "min_len", "y": "bleu", "groupKeys": "runSets"}
    media = sorted(k for c in panels["Media Browser"] for k in c["mediaKeys"])  # Fig. 3: the heatmaps
    assert media == sorted(f"{s}/attention/{k}/example_0" for s in ("val", "test") for k in ("cross", "encoder_self", "decoder_self"))
    lines = {c["chartTitle"]: c for c in panels["Run History Line Plot"]}
    assert lines["losses by configuration"]["metrics"] == ["train/loss", "val/loss"]
    assert lines["training tokens per second"]["metrics"] == ["train/tokens_per_sec"]
    # every panel reads runs of this one group, grouped by the three axes
    (filters,) = list(dashboard._find(spec, "filters"))[:1]
    assert filters["filters"] == [{"key": {"section": "run", "name": "group"}, "op": "=", "value": "train-sweep7", "disabled": False}]
    (grouping,) = list(dashboard._find(spec, "grouping"))[:1]
    assert [g["name"] for g in grouping] == ["arch.value", "attention.value", "pos_enc.value"]
    pinned = list(dashboard._find(spec, "columnPinned"))[0]
    assert {"config:arch.value", "config:seed.value", "summary:test/bleu", "summary:summary/tokens_per_sec"} <= set(pinned)
    assert {"summary:test/bleu_ci_low", "summary:test/bleu_ci_high"} <= set(pinned)  # each run's 95 % interval
    printed = capsys.readouterr().out
    assert f"{len(list(dashboard._panels_of(spec)))} panels" in printed and "Bar Chart: test/bleu by attention" in printed


@pytest.mark.parametrize(
    "task, headline, curve, figure, absent",
    [
        ("classification", "test/acc", None, "test/confusion_matrix", "test/bleu"),
        ("lm", "test/ppl", "test/loss_by_position", "test/attention/self/example_0", "test/acc"),
        ("mlm", "test/ppl", None, None, "test/bleu"),
    ],
)
def test_the_panels_come_from_the_task(tmp_path, task, headline, curve, figure, absent):
    keys = dashboard.logged_keys(dry_run(tmp_path, task=task))["logged"]
    task_class = dashboard.components.lookup("task", task)
    assert task_class.monitor in keys and headline in keys and absent not in keys
    assert all(key in keys for _, key, _ in task_class.report_columns)
    assert (curve in keys) if curve else not any(k.endswith("_by_length") or k.endswith("_by_position") for k in keys)
    assert (figure in keys) if figure else not any("attention/" in k for k in keys)


def test_saving_without_wandb_online_fails_at_once_with_what_to_do(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    code = dashboard.main(["--entity", "me", "--project", "attnlab", "--group", "g"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "wandb login" in err and "--dry-run" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "summarise"], "--task: task 'summarise' is not an attnlab component; known:"),
        (["--kind", "notebook"], "invalid choice: 'notebook'"),
    ],
)
def test_bad_arguments_are_named(tmp_path, args, message, capsys):
    try:
        code = dashboard.main(["--entity", "me", "--project", "p", "--group", "g", "--dry-run", str(tmp_path / "x.json"), *args])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()

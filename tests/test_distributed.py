"""Scale-out: DDP on CPU (gloo, 2 processes), multirun x DDP, torchrun, exact resume after SIGKILL,
bf16 and torch.compile. Processes are real subprocesses of train.py (never DDP inside pytest)."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY, TINY_ARCH, compose_config, leet, only_run_dir, read_metrics, run_cli, run_eval_cli, run_train_cli

SMALL = [a for a in TINY if a not in ("logger=none",)] + TINY_ARCH["transformer"] + ["data.corpus.test_size=25", "data.eval_batch_size=8"]


@pytest.mark.parametrize(
    "batching",
    # two train.py processes and an eval.py, ~40 s: the slow tier (the fast tier has to fit 10 minutes on 2 cores)
    [pytest.param([], id="sentences", marks=pytest.mark.slow), pytest.param(["data.max_tokens=160", "data.eval_max_tokens=60"], id="token_buckets", marks=pytest.mark.slow)],
)
def test_ddp_cpu_two_processes_one_wandb_run_and_single_process_bleu(tmp_path, batching):
    logs = tmp_path / "logs"
    proc = run_train_cli(["trainer=ddp_cpu", *SMALL, *batching, f"paths.log_dir={logs}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = only_run_dir(logs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # rank 0 only
    assert len(list((run / "checkpoints").glob("*.ckpt"))) >= 1
    assert len((run / "test_hypotheses.txt").read_text().splitlines()) == 25  # padding repeats dropped
    summary = leet(next((run / "wandb").glob("offline-run-*")))
    assert summary["summary"]["test/bleu"] == pytest.approx(metrics["metrics"]["test/bleu"])
    # one process evaluating the same checkpoint gets the same scores
    ev = run_eval_cli([f"ckpt_path={metrics['checkpoint']}", f"paths.log_dir={tmp_path / 'eval'}"], cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    single = json.loads(next((tmp_path / "eval").rglob("metrics.json")).read_text())["metrics"]
    for key in ("test/bleu", "test/chrf", "test/exact_match"):
        assert single[key] == pytest.approx(metrics["metrics"][key], abs=1e-9), key
    assert single["test/loss"] == pytest.approx(metrics["metrics"]["test/loss"], rel=1e-5)


@pytest.mark.slow  # three train.py processes, ~40 s: the fast tier's longest test
def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    common = [a for a in SMALL if not a.startswith("data.corpus.train_size")] + [
        "data.corpus.train_size=192", "trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=2", "seed=3",
    ]
    straight = run_train_cli([*common, f"paths.log_dir={tmp_path / 'a'}"], cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = json.loads(next((tmp_path / "a").rglob("metrics.json")).read_text())

    killed = run_train_cli([*common, f"paths.log_dir={tmp_path / 'b'}", "+callbacks.killer._target_=tests.helpers.KillAtStep", "+callbacks.killer.step=5"], cwd=tmp_path)
    assert killed.returncode == -9  # SIGKILL, mid-epoch (6 steps an epoch)
    run = only_run_dir(tmp_path / "b")
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "last.ckpt").exists()
    first_id = next((run / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[-1]

    resumed = run_train_cli([*common, f"paths.log_dir={tmp_path / 'b'}", f"resume={run}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = json.loads((run / "metrics.json").read_text())
    assert got["global_step"] == expected["global_step"] == 12
    for key, value in expected["metrics"].items():
        if key.endswith(("loss", "ppl")):
            assert got["metrics"][key] == pytest.approx(value, abs=1e-6), key
        else:
            assert got["metrics"][key] == value, key
    ids = {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}
    assert ids == {first_id}  # the resumed W&B run is the same run


@pytest.mark.slow  # a train.py process, ~8 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    proc = run_train_cli([*TINY, f"resume={empty}"], cwd=tmp_path)
    assert proc.returncode != 0 and "there is no checkpoints/last.ckpt" in proc.stderr


@pytest.mark.slow  # train.py processes, ~12 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_joblib_launcher_refuses_ddp_up_front(tmp_path):
    proc = run_train_cli(["-m", "hydra/launcher=joblib", "trainer=ddp_cpu", "seed=1,2", *TINY, f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert "hydra/launcher=joblib cannot run DDP jobs" in proc.stderr
    failed = [json.loads(p.read_text()) for p in (tmp_path / "logs").rglob("metrics.json")]
    assert len(failed) == 2 and all(f["status"] == "failed" for f in failed)


@pytest.mark.slow
def test_multirun_with_ddp_runs_each_job_once(tmp_path):
    logs = tmp_path / "logs"
    proc = run_train_cli(["-m", "trainer=ddp_cpu", "seed=1,2", *SMALL, f"paths.log_dir={logs}"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweeps = list((logs / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1  # no nested or stray sweeps started by the child ranks
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    assert sorted(json.loads((j / "metrics.json").read_text())["seed"] for j in jobs) == [1, 2]
    assert all(len(list((j / "wandb").glob("offline-run-*"))) == 1 for j in jobs)
    assert not (logs / "train" / "runs").exists()  # children wrote into their job's directory


@pytest.mark.slow
def test_torchrun_on_cpu(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    args = [torchrun, "--nproc_per_node", "2", str(ROOT / "train.py"), "trainer=ddp_cpu", *SMALL, f"paths.log_dir={tmp_path / 'logs'}"]
    proc = run_cli(args, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = only_run_dir(tmp_path / "logs")  # both ranks agreed on one directory
    assert "torchrun" in run.name
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 2  # 96 examples / (2 x 32) per step... rounded up


@pytest.mark.slow
def test_one_process_batch_2b_equals_two_processes_batch_b(tmp_path):
    common = [*TINY, *TINY_ARCH["transformer"], "arch.dropout=0.0", "attention.dropout=0.0", "data.shuffle=false", "trainer.max_epochs=2", "task.label_smoothing=0.0"]
    one = run_train_cli([*common, "data.batch_size=32", f"paths.log_dir={tmp_path / 'one'}"], cwd=tmp_path)
    two = run_train_cli([*common, "trainer=ddp_cpu", "data.batch_size=16", f"paths.log_dir={tmp_path / 'two'}"], cwd=tmp_path, timeout=900)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-4000:]
    a = json.loads(next((tmp_path / "one").rglob("metrics.json")).read_text())
    b = json.loads(next((tmp_path / "two").rglob("metrics.json")).read_text())
    assert a["global_step"] == b["global_step"] == 6
    assert b["metrics"]["val/loss"] == pytest.approx(a["metrics"]["val/loss"], rel=2e-3)


PROBE = ["+callbacks.dtype_probe._target_=tests.helpers.OutputDtypeProbe"]


@pytest.mark.parametrize("precision,dtype", [("bf16-mixed", "torch.bfloat16"), ("32-true", "torch.float32")])
def test_mixed_precision_on_cpu_runs_in_the_dtype_asked_for(tmp_path, precision, dtype):
    from attnlab.run.pipeline import train

    cfg = compose_config(tmp_path, [f"trainer.precision={precision}", *PROBE], tmp_path / "data")  # in-process: no process is tested
    result = train(cfg)
    assert (tmp_path / "out" / "logits_dtype.txt").read_text() == dtype  # what the training step's autocast produced
    assert all(math.isfinite(result.metrics[k]) for k in ("val/loss", "test/loss", "val/bleu"))


@pytest.mark.slow
def test_torch_compile_on_cpu(tmp_path):
    logs = tmp_path / "logs"
    proc = run_train_cli([*TINY, *TINY_ARCH["transformer"], "task.compile=true", f"paths.log_dir={logs}"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_metrics(only_run_dir(logs))
    assert result["global_step"] == 3 and math.isfinite(result["metrics"]["val/loss"])

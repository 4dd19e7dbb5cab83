"""Evaluate a checkpoint on a split (eval.py): the task's metrics (BLEU and chrF with the sacrebleu
signature, exact match, BLEU by source length for translation); writes ``<split>_hypotheses.txt``
and metrics.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict

import lightning as L
from omegaconf import DictConfig, OmegaConf

from attnlab.data.loading import load_data
from attnlab.errors import ConfigError
from attnlab.heads.gates import head_mask, masked_heads, set_head_mask
from attnlab.run.callbacks import EvaluationRecorder
from attnlab.run.job import job_overrides
from attnlab.run.memory import keep_freed_memory
from attnlab.run.results import AXES, RunResult
from attnlab.run.checks import config_spec
from attnlab.tasks.checkpoints import load_task
from attnlab.tasks.translator import decoding_settings

SPLITS = ("val", "test")


def _apply_decoding(task, cfg: DictConfig) -> Dict[str, Any]:
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.decoding).items() if v is not None}
    if not hasattr(task, "test_decoding"):
        if overrides:
            raise ConfigError(f"decoding.* applies to translation checkpoints; {cfg.ckpt_path} holds a {task.name} task")
        return {}
    try:
        task.test_decoding = decoding_settings({**task.test_decoding, **overrides})
    except ValueError as exc:
        raise ConfigError(str(exc).replace("task.decoding", "decoding")) from None
    return {"decoding": dict(task.test_decoding)}


def evaluate(cfg: DictConfig) -> RunResult:
    started = time.time()
    if cfg.split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {cfg.split!r}")
    task = load_task(cfg.ckpt_path)
    gates = head_mask(OmegaConf.select(cfg, "task.head_mask", default=None), task.model, str(cfg.ckpt_path))
    set_head_mask(task.model, gates)  # the checkpoint's heads, some switched off (attnlab.heads.gates)
    keep_freed_memory()  # as train.py: decoding's big buffers reuse the heap's pages (see attnlab-translate)
    settings = _apply_decoding(task, cfg)
    data_spec = config_spec(cfg.data, "data") if cfg.get("data") else task.hparams.get("data")
    if not data_spec:
        raise ConfigError(f"{cfg.ckpt_path} records no data config: pass data=... on the command line")
    datamodule = load_data(data_spec, "test", **task.data_overrides())
    output_dir = Path(cfg.paths.output_dir)
    task.test_split = cfg.split
    L.seed_everything(cfg.seed)
    recorder = EvaluationRecorder(output_dir)
    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, logger=False, callbacks=[recorder], default_root_dir=str(output_dir),
        enable_progress_bar=True, enable_model_summary=False, enable_checkpointing=False,
    )
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    trainer.test(task, dataloaders=loader, verbose=False)
    evaluation = recorder.latest[cfg.split]

    recorded = dict(task.hparams.get("choices") or {})
    chosen = {key: value for key, value in (cfg.get("choices") or {}).items() if value is not None}
    result = RunResult(
        status="ok",
        kind="eval",
        task=task.name,
        choices={axis: chosen.get(axis, recorded.get(axis)) for axis in AXES},
        params=sum(p.numel() for p in task.parameters()),
        metrics=dict(evaluation.metrics),
        extras={
            "split": cfg.split,
            **settings,
            **({"head_mask": masked_heads(gates)} if gates is not None else {}),
            **task.result_extras(),
            **{name: {cfg.split: curve.rows} for name, curve in evaluation.curves.items()},
            "predictions": str(output_dir / f"{cfg.split}_{task.prediction_name}.txt"),
            **({"examples": dict(recorder.examples)} if recorder.examples else {}),
        },
        report_columns=[list(column) for column in task.report_columns],
        overrides=job_overrides(),  # what the report tells an eval sweep's jobs apart by (task.head_mask=...)
        wall_time_s=time.time() - started,
        checkpoint=str(cfg.ckpt_path),
        output_dir=str(output_dir),
    )
    from attnlab.stats.compare import run_intervals

    result.extras["intervals"] = run_intervals(output_dir, result, cfg.split)
    result.write(output_dir)
    return result

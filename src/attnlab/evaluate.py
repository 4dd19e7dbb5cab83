"""Evaluate a checkpoint on a split (eval.py): BLEU and chrF with the sacrebleu signature, exact
match, BLEU by source length; writes the hypotheses and metrics.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict

import lightning as L
from omegaconf import DictConfig, OmegaConf

from attnlab.checkpoints import load_translation_task
from attnlab.checks import ConfigError
from attnlab.metrics import bleu_signature
from attnlab.pipeline import load_data

SPLITS = ("val", "test")


def evaluate(cfg: DictConfig) -> Dict[str, Any]:
    started = time.time()
    if cfg.split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {cfg.split!r}")
    task = load_translation_task(cfg.ckpt_path)
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.decoding).items() if v is not None}
    task.hparams.decoding = {**task.hparams.decoding, **overrides}
    data_cfg = cfg.data if cfg.get("data") else task.hparams.data
    if not data_cfg:
        raise ConfigError(f"{cfg.ckpt_path} records no data config: pass data=... on the command line")
    datamodule = load_data(
        data_cfg,
        "test",
        src_vocab=task.hparams.src_vocab,
        tgt_vocab=task.hparams.tgt_vocab,
        src_tokenizer=task.hparams.src_tokenizer,  # the checkpoint's own (a trained BPE included)
        tgt_tokenizer=task.hparams.tgt_tokenizer,
    )
    output_dir = Path(cfg.paths.output_dir)
    task.output_dir = str(output_dir)
    L.seed_everything(cfg.seed)
    trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False, default_root_dir=str(output_dir), enable_progress_bar=True, enable_model_summary=False)
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    trainer.test(task, dataloaders=loader, verbose=False)
    scores = {k.replace("test/", f"{cfg.split}/", 1): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    hypotheses = output_dir / f"{cfg.split}_hypotheses.txt"
    (output_dir / "test_hypotheses.txt").replace(hypotheses)
    result = {
        "checkpoint": str(cfg.ckpt_path),
        "split": cfg.split,
        "data": data_cfg.get("name") if hasattr(data_cfg, "get") else None,
        "decoding": dict(task.hparams.decoding),
        "metrics": scores,
        "bleu_signature": bleu_signature(),
        "bleu_by_length": task.last_eval["test"]["bleu_by_length"],
        "hypotheses": str(hypotheses),
        "wall_time_s": time.time() - started,
    }
    (output_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result

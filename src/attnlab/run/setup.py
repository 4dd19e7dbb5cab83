"""Turning the composed config into a run's parts: loggers (W&B grouping, tags, resume ids),
callbacks, and the experiment summary every logger records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from attnlab.run.job import choices, sweep_group
from attnlab.run.results import AXES
from attnlab.run.wandb_setup import ensure_wandb_mode


def choice_tags(cfg: DictConfig) -> List[str]:
    return [f"{key}:{cfg.choices[key]}" for key in AXES]


def previous_wandb_id(output_dir: Path) -> Optional[str]:
    """The id of the W&B run an earlier attempt of this run directory wrote (``*-run-<time>-<id>``)."""
    runs = sorted((output_dir / "wandb").glob("*run-*-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def instantiate_loggers(cfg: DictConfig, output_dir: Path) -> list:
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node is None or "_target_" not in node:
            continue
        extra = {}
        if "Wandb" in node._target_:
            if ensure_wandb_mode() == "offline":
                rank_zero_info(
                    f"W&B: no API key configured, logging offline under {output_dir}/wandb. Upload later with "
                    f"`wandb sync {output_dir}/wandb/offline-run-*`, or browse locally with `wandb leet {output_dir}/wandb`."
                )
            extra = {"tags": list(node.get("tags") or []) + choice_tags(cfg), "group": node.get("group") or sweep_group(cfg)}
            previous = previous_wandb_id(output_dir) if cfg.get("resume") else None
            if previous:
                extra.update(id=previous, resume="allow")  # the resumed run continues the same W&B run
        loggers.append(instantiate(node, **extra))
    return loggers


def instantiate_callbacks(cfg: DictConfig, with_logger: bool) -> List[L.Callback]:
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if node is None or "_target_" not in node:
            continue
        if node._target_.endswith("LearningRateMonitor") and not with_logger:
            continue  # it refuses to run without a logger
        callbacks.append(instantiate(node))
    return callbacks


def experiment_summary(cfg: DictConfig, num_params: int) -> Dict[str, Any]:
    """What W&B and the other loggers record: the choices as top-level keys, then the full config."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    summary: Dict[str, Any] = dict(choices(cfg))
    summary.update(seed=cfg.seed, params=num_params, run_name=cfg.run_name, tags=list(cfg.get("tags") or []))
    for key in (*AXES, "task"):
        summary[f"{key}_params"] = resolved[key]
    summary["trainer"] = resolved["trainer"]
    return summary

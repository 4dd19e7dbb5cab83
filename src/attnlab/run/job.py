"""What Hydra knows about the running job (its overrides, its sweep, the chosen options), and the
result a job leaves when it fails. Light on purpose: train.py uses it before importing Lightning."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from attnlab.run.results import AXES, RunResult


def hydra_runtime() -> Optional[Any]:
    """The running job's HydraConfig node, or None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def job_overrides() -> List[str]:
    runtime = hydra_runtime()
    return list(runtime.overrides.task) if runtime is not None else []


def is_multirun() -> bool:
    runtime = hydra_runtime()
    return runtime is not None and runtime.mode is not None and runtime.mode.name == "MULTIRUN"


def sweep_group(cfg: DictConfig) -> Optional[str]:
    """All jobs of one multirun share a W&B group: ``sweep_name``, else the sweep directory's name."""
    if cfg.get("sweep_name"):
        return str(cfg.sweep_name)
    if is_multirun():
        return f"{cfg.task_name}-{Path(cfg.paths.output_dir).parent.name}"
    return None


def choices(cfg: DictConfig) -> Dict[str, str]:
    """The chosen option of every axis (and the task), as plain strings."""
    return {key: str(value) for key, value in cfg.choices.items()}


def base_result(cfg: DictConfig, status: str) -> RunResult:
    """The fields every result of this job shares, whatever happened to it."""
    picked = choices(cfg)
    return RunResult(
        status=status,
        task=picked.get("task"),
        choices={axis: picked.get(axis) for axis in AXES},
        seed=cfg.seed,
        run_name=cfg.run_name,
        tags=list(cfg.get("tags") or []),
        overrides=job_overrides(),
        output_dir=str(cfg.paths.output_dir),
    )


def record_failure(cfg: DictConfig, exc: BaseException) -> RunResult:
    """A failed job still leaves a metrics.json, so the report (and the user) can name it
    (written once, by the first process, when DDP ranks fail together)."""
    result = base_result(cfg, "failed")
    result.error = f"{type(exc).__name__}: {exc}"
    if os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0":
        result.write(cfg.paths.output_dir)
    return result

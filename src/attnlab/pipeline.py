"""One training job, top to bottom: data, checks, model, loggers, fit, test, metrics.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_info
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from attnlab.callbacks import TokenThroughput
from attnlab.checks import ConfigError, DataError, check_model_config, check_required_values
from attnlab.metrics import bleu_signature
from attnlab.wandb_setup import ensure_wandb_mode, finish_wandb



def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def instantiate_callbacks(cfg: DictConfig, with_logger: bool) -> List[L.Callback]:
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None or "_target_" not in node:
            continue
        if node._target_.endswith("LearningRateMonitor") and not with_logger:
            continue  # it refuses to run without a logger
        callbacks.append(instantiate(node))
    return callbacks


def hydra_runtime() -> Optional[Any]:
    """The running job's HydraConfig node, or None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(cfg: DictConfig) -> Optional[str]:
    """All jobs of one multirun share a W&B group: ``sweep_name``, else the sweep directory's name."""
    if cfg.get("sweep_name"):
        return str(cfg.sweep_name)
    runtime = hydra_runtime()
    if runtime is not None and runtime.mode is not None and runtime.mode.name == "MULTIRUN":
        return f"{cfg.task_name}-{Path(cfg.paths.output_dir).parent.name}"
    return None


def choice_tags(cfg: DictConfig) -> List[str]:
    return [f"{key}:{cfg.choices[key]}" for key in ("arch", "attention", "pos_enc", "data")]


def previous_wandb_id(output_dir: Path) -> Optional[str]:
    """The id of the W&B run an earlier attempt of this run directory wrote (``*-run-<time>-<id>``)."""
    runs = sorted((output_dir / "wandb").glob("*run-*-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> Optional[str]:
    """``resume=<dir>`` means: continue from <dir>/checkpoints/last.ckpt (Lightning's "last")."""
    if not cfg.get("resume"):
        return cfg.get("ckpt_path")
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise ConfigError(f"resume={cfg.resume}: there is no checkpoints/last.ckpt to continue from")
    return cfg.get("ckpt_path") or "last"


def instantiate_loggers(cfg: DictConfig, output_dir: Path) -> list:
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
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


def load_data(data_cfg: DictConfig, stage: str = "fit", **overrides: Any):
    """The datamodule of ``data_cfg``, set up; unreadable data becomes a DataError that says
    what to fix, an invalid data setting a ConfigError."""
    try:
        datamodule = instantiate(data_cfg, **overrides)
        datamodule.prepare_data()
        datamodule.setup(stage)
    except InstantiationException as exc:
        raise ConfigError(str(_root_cause(exc))) from exc
    except DataError:
        raise
    except (FileNotFoundError, ConnectionError, ImportError) as exc:
        raise DataError(str(exc)) from exc
    except ValueError as exc:  # the data's own checks name their key (data.bpe..., data.max_tokens)
        raise ConfigError(str(exc)) from exc
    return datamodule


def experiment_summary(cfg: DictConfig, num_params: int) -> Dict[str, Any]:
    """What W&B and metrics.json record: the choices as top-level keys, then the full config."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    summary: Dict[str, Any] = {key: cfg.choices[key] for key in ("arch", "attention", "pos_enc", "data")}
    summary.update(seed=cfg.seed, params=num_params, run_name=cfg.run_name, tags=list(cfg.get("tags") or []))
    for key in ("arch", "attention", "pos_enc", "data"):
        summary[f"{key}_params"] = resolved[key]
    for key in ("task", "trainer"):
        summary[key] = resolved[key]
    return summary


def _scalars(metrics: Dict[str, Any], prefix: str) -> Dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def end_process_group() -> None:
    """Tear down this job's DDP process group, so the next job of a multirun starts its own."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def job_overrides() -> List[str]:
    runtime = hydra_runtime()
    return list(runtime.overrides.task) if runtime is not None else []


def record_failure(cfg: DictConfig, exc: BaseException) -> Dict[str, Any]:
    """A failed job of a sweep still leaves a metrics.json, so the report can name it."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        **{key: cfg.choices[key] for key in ("arch", "attention", "pos_enc", "data")},
        "seed": cfg.seed,
        "run_name": cfg.run_name,
        "overrides": job_overrides(),
        "metrics": {},
        "output_dir": str(output_dir),
    }
    (output_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def train(cfg: DictConfig) -> Dict[str, Any]:
    """Train, test and record one configuration; returns what metrics.json holds."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        ckpt_path = resume_checkpoint(cfg, output_dir)
        L.seed_everything(cfg.seed, workers=True)
        check_required_values(cfg)
        datamodule = load_data(cfg.data, shuffle_seed=cfg.seed)  # the run's seed orders the data
        longest = max(datamodule.max_source_len, datamodule.max_target_len)
        check_model_config(cfg, longest, cfg.choices.data)
        try:
            task = instantiate(
                cfg.task,
                _recursive_=False,
                arch=cfg.arch,
                attention=cfg.attention,
                pos_enc=cfg.pos_enc,
                src_vocab=datamodule.src_vocab.tokens,
                tgt_vocab=datamodule.tgt_vocab.tokens,
                src_tokenizer=datamodule.src_tokenizer.spec,
                tgt_tokenizer=datamodule.tgt_tokenizer.spec,
                data=cfg.data,
            )
        except (ValueError, TypeError, InstantiationException) as exc:
            raise ConfigError(str(_root_cause(exc))) from exc
        task.output_dir = str(output_dir)
        if cfg.get("model", {}).get("compile"):
            task.model.compile()  # in place: parameter names (and checkpoints) stay the same
        num_params = sum(p.numel() for p in task.model.parameters())

        loggers = instantiate_loggers(cfg, output_dir)
        callbacks = instantiate_callbacks(cfg, with_logger=bool(loggers))
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        summary = experiment_summary(cfg, num_params)
        for logger in trainer.loggers:
            logger.log_hyperparams(summary)

        if cfg.get("train", True):
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        val_metrics = _scalars(trainer.callback_metrics, "val/")
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        test_metrics: Dict[str, float] = {}
        if cfg.get("test", True):
            trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            test_metrics = _scalars(trainer.callback_metrics, "test/")

        throughput = next((c for c in callbacks if isinstance(c, TokenThroughput)), None)
        result = {
            "status": "ok",
            **{k: summary[k] for k in ("arch", "attention", "pos_enc", "data", "seed", "params", "run_name", "tags")},
            "overrides": job_overrides(),
            "metrics": {**val_metrics, **test_metrics},
            "bleu_signature": bleu_signature(),  # BLEU is on detokenized text: say exactly which BLEU
            "bleu_by_length": {stage: task.last_eval[stage]["bleu_by_length"] for stage in ("val", "test") if stage in task.last_eval},
            "tokens_per_sec": throughput.tokens_per_sec if throughput else None,
            "wall_time_s": time.time() - started,
            "global_step": trainer.global_step,
            "best_checkpoint": best or None,
            "output_dir": str(output_dir),
        }
        if trainer.is_global_zero:
            (output_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
            for logger in trainer.loggers:
                logger.log_metrics({"summary/wall_time_s": result["wall_time_s"], "summary/tokens_per_sec": result["tokens_per_sec"] or 0.0})
        return result
    finally:
        finish_wandb()
        end_process_group()

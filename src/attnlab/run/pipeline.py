"""One training job, top to bottom: data, checks, task, loggers, fit, test, metrics.json.

Nothing here knows which task it trains: the task class named by ``task._target_`` says what it
needs from the data (:meth:`Task.data_inputs`), and its evaluations reach the run through the
:class:`~attnlab.run.callbacks.EvaluationRecorder`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab import components
from attnlab.data.loading import load_data
from attnlab.errors import ConfigError
from attnlab.heads.gates import head_mask, masked_heads, set_head_mask
from attnlab.run.callbacks import EvaluationRecorder, TokenThroughput
from attnlab.run.checks import check_config, check_model_config, config_spec
from attnlab.run import precision
from attnlab.run.job import base_result, choices
from attnlab.run.memory import PeakMemory, keep_freed_memory
from attnlab.run.results import RunResult
from attnlab.run.setup import experiment_summary, instantiate_callbacks, instantiate_loggers
from attnlab.run.wandb_setup import finish_wandb
from attnlab.tasks.base import Task
from attnlab.tasks.checkpoints import check_compatible, read_checkpoint


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> Optional[str]:
    """``resume=<dir>`` means: continue from <dir>/checkpoints/last.ckpt (Lightning's "last")."""
    if not cfg.get("resume"):
        return cfg.get("ckpt_path")
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise ConfigError(f"resume={cfg.resume}: there is no checkpoints/last.ckpt to continue from")
    return cfg.get("ckpt_path") or "last"


def check_resume_checkpoint(ckpt_path: Optional[str], output_dir: Path, task: Task) -> None:
    """The checkpoint a run continues from is read as data first, and must fit the model."""
    if ckpt_path is None:
        return
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    check_compatible(read_checkpoint(path), task, path)


def task_class_of(cfg: DictConfig) -> type:
    try:
        return get_class(cfg.task._target_)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"task._target_={cfg.task._target_}: {exc}") from None


def check_data_kind(task_class: type, data_spec: Dict[str, Any], cfg: DictConfig) -> None:
    """Each task reads its kind of data: translation sentence pairs, classification labelled text."""
    kind = components.component_name(data_spec)
    if task_class.data_kinds and kind not in task_class.data_kinds:
        raise ConfigError(
            f"data={cfg.choices.data} gives {kind} data, but task={cfg.choices.task} reads {' or '.join(task_class.data_kinds)} data: "
            f"choose a data option for that task (see the README's data sections)"
        )


def build_task(cfg: DictConfig, datamodule: Any, data_spec: Dict[str, Any]) -> Task:
    """The task of ``cfg.task``, with the model's component specs and what it needs from the data."""
    task_class = task_class_of(cfg)
    specs = {key: config_spec(cfg[key], key) for key in ("arch", "attention", "pos_enc")}
    check_model_config(cfg, getattr(datamodule, "longest_sequence", None), cfg.choices.data)
    task_cfg = cfg.task.copy()
    with open_dict(task_cfg):
        task_cfg.pop("head_mask", None)  # an evaluation setting (the test's gates), not the model's
    try:
        return instantiate(
            task_cfg,
            _convert_="all",  # plain lists in the optimizer's arguments: checkpoints hold no config objects
            **specs,
            **task_class.data_inputs(datamodule),
            data=data_spec,
            choices=choices(cfg),
        )
    except (ValueError, TypeError, InstantiationException) as exc:
        raise ConfigError(str(_root_cause(exc))) from exc


def data_and_task(cfg: DictConfig) -> Tuple[Any, Task]:
    """The set-up datamodule and the task of a composed config, as a run builds them."""
    data_spec = config_spec(cfg.data, "data")
    task_class = task_class_of(cfg)
    check_data_kind(task_class, data_spec, cfg)
    # the run's seed orders the data; a pretrained model brings its tokenizer and vocabulary
    datamodule = load_data(data_spec, shuffle_seed=cfg.seed, **task_class.pretrained_data(cfg.task))
    return datamodule, build_task(cfg, datamodule, data_spec)


def end_process_group() -> None:
    """Tear down this job's DDP process group, so the next job of a multirun starts its own."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_precision(cfg: DictConfig) -> str:
    """``trainer.precision=auto`` made concrete for this machine (in cfg, so every logger records
    the value that ran); -> what the run's summary says about it."""
    value = str(cfg.trainer.get("precision", "32-true"))
    if value != precision.AUTO:
        return value
    value, why = precision.resolve(str(cfg.trainer.get("accelerator", "auto")))
    with open_dict(cfg):
        cfg.trainer.precision = value
    return f"{value} ({why}; trainer.precision=32-true for fp32)"


def train(cfg: DictConfig) -> RunResult:
    """Train, test and record one configuration."""
    started = time.time()
    peak: Optional[PeakMemory] = None
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        if cfg.get("keep_freed_memory", True):
            keep_freed_memory()
        ckpt_path = resume_checkpoint(cfg, output_dir)
        L.seed_everything(cfg.seed, workers=True)
        check_config(cfg)  # (train.py ran it already; a caller of train() may not have)
        datamodule, task = data_and_task(cfg)
        check_resume_checkpoint(ckpt_path, output_dir, task)
        mask = OmegaConf.select(cfg, "task.head_mask", default=None)
        gates = head_mask(mask, task.model, "this run's model") if mask is not None else None  # refused before training, not after
        num_params = sum(p.numel() for p in task.parameters())

        precision_choice = resolve_precision(cfg)
        recorder = EvaluationRecorder(output_dir)
        try:  # settings Lightning refuses (a progress bar turned off and configured at once, ...)
            loggers = instantiate_loggers(cfg, output_dir)
            callbacks = [recorder, *instantiate_callbacks(cfg, with_logger=bool(loggers))]
            trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        except InstantiationException as exc:
            raise ConfigError(" ".join(str(_root_cause(exc)).split())) from exc
        summary = experiment_summary(cfg, num_params)
        for logger in trainer.loggers:
            logger.log_hyperparams(summary)

        if cfg.get("train", True):
            peak = PeakMemory()  # from here: what training the model adds, not what loading the libraries and data did
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            if "val" not in recorder.latest and not trainer.interrupted:
                # fewer steps than one validation interval: the run's val metrics come from its end
                rank_zero_info(f"attnlab: no validation ran during training ({trainer.global_step} steps, fewer than one validation interval): validating the final weights once")
                trainer.validate(task, datamodule=datamodule, verbose=False)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.get("test", True):
            set_head_mask(task.model, gates)  # the test's heads; training and validation ran with all of them
            trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)

        throughput = next((c for c in callbacks if isinstance(c, TokenThroughput)), None)
        result = base_result(cfg, "ok")
        result.params = num_params
        result.metrics = {k: v for evaluation in recorder.latest.values() for k, v in evaluation.metrics.items()}
        result.extras = task.result_extras()
        if gates is not None:
            result.extras["head_mask"] = masked_heads(gates)
        for split, evaluation in recorder.latest.items():
            for name, curve in evaluation.curves.items():
                result.extras.setdefault(name, {})[split] = curve.rows  # e.g. bleu_by_length: {val: ..., test: ...}
        if recorder.examples:
            result.extras["examples"] = dict(recorder.examples)
        sizes = {split: len(dataset) for split, dataset in (getattr(datamodule, "splits", None) or {}).items()}
        if sizes:
            result.extras["data_sizes"] = sizes  # what this run trained and was scored on
        if hasattr(datamodule, "train_length_range"):
            result.extras["train_length_range"] = list(datamodule.train_length_range)
        result.extras["precision"] = precision_choice
        result.report_columns = [list(column) for column in task.report_columns]
        result.tokens_per_sec = throughput.tokens_per_sec if throughput else None
        result.wall_time_s = time.time() - started
        result.peak_memory_mib = peak.mib() if peak is not None else None
        result.global_step = trainer.global_step
        result.checkpoint = best or None
        if trainer.is_global_zero:
            from attnlab.stats.compare import run_intervals

            resamples = int(cfg.get("interval_resamples", 1000))
            result.extras["intervals"] = run_intervals(output_dir, result, resamples=resamples) if resamples else {}  # the test metrics' 95 % bootstrap intervals
            result.write(output_dir)
            bounds = {f"{key}_ci_{end}": bound[end] for key, bound in result.extras["intervals"].items() for end in ("low", "high")}
            for logger in trainer.loggers:
                logger.log_metrics({"summary/wall_time_s": result.wall_time_s, "summary/tokens_per_sec": result.tokens_per_sec or 0.0, **bounds})
        return result
    finally:
        finish_wandb()
        end_process_group()

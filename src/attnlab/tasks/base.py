"""What every task is: a LightningModule with an optimizer and schedule from the config, metric
names ``train/`` ``val/`` ``test/``, a checkpoint that alone rebuilds its model, and one typed
:class:`Evaluation` per evaluated split, handed to the callbacks that want it.

A task subclasses :class:`Task` and implements

* :meth:`loss`, ``training_step`` (logging ``train/loss``) and :meth:`batch_tokens`;
* :meth:`reset_evaluation`, :meth:`evaluation_step` and :meth:`evaluation_end` (-> Evaluation);
* optionally :meth:`attention_examples`, for heatmaps of a few fixed examples.

The base class runs the evaluation loop for validation and test, logs the evaluation's metrics
and calls ``on_evaluation`` of every :class:`EvaluationCallback` of the trainer (the run's recorder,
the W&B/TensorBoard artifacts). Nothing reads results off the task from outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType

from attnlab import components
from attnlab.errors import ConfigError
from attnlab.schema import Spec
from attnlab.tasks.shapes import MODEL_KEYS

DECAY_RULES = ("matrices", "all")  # task.decay: which parameters weight decay applies to

# (heading, metric key, higher is better): what a sweep report shows per configuration
ReportColumn = Tuple[str, str, bool]


def plain(value: Any) -> Any:
    """Config containers -> plain dicts and lists, so hyperparameters load with ``weights_only``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


@dataclass
class Curve:
    """A metric along some axis (BLEU by source length): a W&B line chart and rows in metrics.json."""

    rows: List[Dict[str, Any]]
    x: str
    y: str
    title: str


@dataclass
class Heatmap:
    """A matrix to draw (a confusion matrix): rows x columns, with their labels."""

    values: np.ndarray
    rows: List[str]
    cols: List[str]
    title: str
    row_axis: str = ""
    col_axis: str = ""


@dataclass
class AttentionMap:
    layers: List[np.ndarray]  # per layer (H, len(rows), len(cols))
    rows: List[str]  # the querying tokens
    cols: List[str]  # the tokens attended to


@dataclass
class AttentionExample:
    caption: str  # what the model produced for this example
    maps: Dict[str, AttentionMap]  # kind of attention ("cross", "encoder_self", ...) -> map


@dataclass
class Evaluation:
    """What one evaluation of one split produced."""

    split: str  # "val" or "test"
    metrics: Dict[str, float]  # full names, e.g. "val/bleu"
    predictions: List[str]  # one per example, in the split's order
    inputs: List[str]  # the examples' inputs, in the same order
    examples: List[Dict[str, str]] = field(default_factory=list)  # a few rows for dashboards
    curves: Dict[str, Curve] = field(default_factory=dict)
    heatmaps: Dict[str, Heatmap] = field(default_factory=dict)
    # one row per example, in the split's order, with the fields the task's example_measures read
    # (attnlab.stats): what intervals and paired tests resample after the run
    records: List[Dict[str, Any]] = field(default_factory=list)


class EvaluationCallback(L.Callback):
    """A callback that receives every :class:`Evaluation` a task produces."""

    def on_evaluation(self, trainer: L.Trainer, task: "Task", evaluation: Evaluation) -> None:
        pass


class Task(L.LightningModule):
    """Base of every task. ``optimizer`` and ``scheduler`` are factories from the config
    (``_partial_: true``): ``optimizer(parameters)``, ``scheduler(optimizer, total_steps=N)``.
    A task rebuilt from a checkpoint has none: it is for inference and evaluation."""

    name: ClassVar[str]  # its option name (task=...) and its name in checkpoints
    monitor: ClassVar[str]  # the validation metric that picks the best checkpoint, e.g. "val/bleu"
    monitor_mode: ClassVar[str] = "max"
    prediction_name: ClassVar[str] = "predictions"  # files are <split>_<prediction_name>.txt
    report_columns: ClassVar[List[ReportColumn]] = []
    alignment_kind: ClassVar[Optional[str]] = None  # the attention kind a report draws per configuration
    data_kinds: ClassVar[Tuple[str, ...]] = ()  # the datamodules (registered names) it reads; empty: any
    # hyperparameter -> how to read it off the set-up datamodule (vocabularies, tokenizers, labels)
    data_fields: ClassVar[Dict[str, Callable[[Any], Any]]] = {}
    batch_key: ClassVar[str] = "tokens"  # the batch's (B, ...) tensor that says how many examples it holds
    # what a checkpoint holds: component specs (checked by the registry), every other hyperparameter
    # the task writes with its shape (a key not named here is refused on reading), and the ones it
    # cannot do without besides the model's components
    component_keys: ClassVar[Dict[str, str]] = {"arch": "arch", "attention": "attention", "pos_enc": "pos_enc", "data": "datamodule"}
    hparam_schema: ClassVar[Dict[str, Spec]] = {}
    checkpoint_keys: ClassVar[Tuple[str, ...]] = ()
    # what an evaluation logs besides metrics, as the W&B dashboard (attnlab-dashboard) reads it:
    curve_axes: ClassVar[Dict[str, Tuple[str, str]]] = {}  # curve name -> (x column, y column)
    figure_keys: ClassVar[Tuple[str, ...]] = ()  # images under val/ and test/ (first example's attention, own figures)
    # per-example records (Evaluation.records): the fields that say which example a row is, and the
    # measure (attnlab.stats.measures) that recomputes each metric ("bleu" for <split>/bleu) from them
    example_identity: ClassVar[Tuple[str, ...]] = ()
    example_measures: ClassVar[Dict[str, str]] = {}

    def __init__(
        self,
        optimizer: Optional[Callable] = None,
        scheduler: Optional[Callable] = None,
        monitor: Optional[str] = None,
        monitor_mode: Optional[str] = None,
        decay: str = "matrices",
    ):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if decay not in DECAY_RULES:
            raise ConfigError(f"task.decay must be one of {', '.join(DECAY_RULES)}; got {decay!r}")
        self.decay = decay
        if monitor is not None:  # task.monitor in the config: another metric than the task's default
            self.monitor = monitor
        if monitor_mode is not None:
            if monitor_mode not in ("min", "max"):
                raise ConfigError(f"task.monitor_mode must be min or max; got {monitor_mode!r}")
            self.monitor_mode = monitor_mode
        self.test_split = "test"  # the name the test loop gives its split (eval.py may evaluate "val")

    def save_task_hyperparameters(self, specs: Dict[str, Any], data: Any, choices: Any, **own: Any) -> None:
        """What rebuilds this task, into its checkpoint: the model's component specs (checked by the
        registry), the task's own hyperparameters (``own``, in ``hparam_schema``'s shapes), the
        data spec (eval.py rebuilds the splits from it) and the run's choices."""
        self.save_hyperparameters(
            {
                "task": self.name,
                **{key: components.check_spec(plain(specs[key]), key, key) for key in MODEL_KEYS},
                **own,
                "data": components.check_spec(plain(data), "data", "datamodule") if data else None,
                "choices": plain(choices) or {},
            },
            logger=False,  # the pipeline logs the experiment's config itself; vocabularies stay out of W&B
        )

    # -- what the pipeline asks of a task class --------------------------------------------
    @classmethod
    def pretrained_data(cls, task_cfg: Any) -> Dict[str, Any]:
        """Datamodule arguments a pretrained model imposes before the data is read (its tokenizer
        and vocabulary), from the task's config."""
        return {}

    @classmethod
    def data_inputs(cls, datamodule: Any) -> Dict[str, Any]:
        """Constructor arguments that come from the set-up data (vocabularies, tokenizers, labels)."""
        return {key: field(datamodule) for key, field in cls.data_fields.items()}

    def data_overrides(self) -> Dict[str, Any]:
        """Datamodule arguments that make data match this trained model (its vocabularies): the
        same keys, from the checkpoint."""
        return {key: self.hparams[key] for key in self.data_fields}

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ConfigError("this task was built without task.optimizer (e.g. from a checkpoint): it cannot train")
        try:
            optimizer = self.optimizer_factory(self.optimizer_parameters())
        except TypeError as exc:  # e.g. fused=true kept for an optimizer that has no such argument
            raise ConfigError(f"task.optimizer: {exc}; drop a key it does not take with ~task.optimizer.<key>") from exc
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        plugin = self.trainer.precision_plugin
        if isinstance(plugin, MixedPrecision) and plugin.scaler is None:
            # bf16-mixed has no gradient scaler: the gradients are true ones, and clipping them is
            # right for any optimizer. Lightning refuses a fused optimizer under every mixed
            # precision, because under fp16 its step unscales the gradients after clipping ran.
            algorithm = GradClipAlgorithmType(gradient_clip_algorithm or GradClipAlgorithmType.NORM)
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val or 0.0, algorithm)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def optimizer_parameters(self) -> List[Dict[str, Any]]:
        """What the optimizer updates, as parameter groups (a task may split them further, e.g.
        a smaller learning rate for a pretrained encoder, through :meth:`decay_groups`)."""
        return self.decay_groups(p for p in self.parameters() if p.requires_grad)

    def decay_groups(self, parameters: Iterable[torch.Tensor], **settings: Any) -> List[Dict[str, Any]]:
        """``parameters`` split for weight decay: with ``task.decay=matrices`` (the default) only
        weight matrices and embedding tables (>= 2-D) decay, at task.optimizer.weight_decay, and
        biases and norm gains do not, as nanoGPT, BERT and Hugging Face's Trainer do (decay pulls
        a gain towards 0, not towards its neutral 1); ``all`` decays every parameter."""
        parameters = list(parameters)
        if self.decay == "all":
            return [{"params": parameters, **settings}] if parameters else []
        matrices = [p for p in parameters if p.ndim >= 2]
        vectors = [p for p in parameters if p.ndim < 2]
        groups = [{"params": matrices, **settings}, {"params": vectors, **settings, "weight_decay": 0.0}]
        return [group for group in groups if group["params"]]

    def loss(self, batch: Any):
        """The training loss of a batch (``training_step`` logs it; benchmarks call it alone)."""
        raise NotImplementedError

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[self.batch_key].size(0))
        return loss

    def batch_tokens(self, batch: Any) -> int:
        """Tokens a training batch holds (for tokens/s)."""
        raise NotImplementedError

    # -- evaluation -----------------------------------------------------------------------------
    def reset_evaluation(self) -> None:
        raise NotImplementedError

    def evaluation_step(self, batch: Any, split: str) -> None:
        raise NotImplementedError

    def evaluation_end(self, split: str) -> Evaluation:
        """The split's evaluation, identical on every DDP rank."""
        raise NotImplementedError

    def result_extras(self) -> Dict[str, Any]:
        """What metrics.json should say about how this task scored (e.g. sacrebleu's signature)."""
        return {}

    def attention_examples(self, inputs: Sequence[str]) -> List[AttentionExample]:
        """Attention maps of the model on these inputs (tasks without attention to show: none)."""
        return []

    def _finish_evaluation(self, split: str) -> None:
        evaluation = self.evaluation_end(split)
        monitored = {k: v for k, v in evaluation.metrics.items() if k == self.monitor}
        # every rank holds the same synchronised values; sync_dist only confirms them
        self.log_dict(monitored, prog_bar=True, sync_dist=True)
        self.log_dict({k: v for k, v in evaluation.metrics.items() if k not in monitored}, sync_dist=True)
        for callback in self.trainer.callbacks:
            if isinstance(callback, EvaluationCallback):
                callback.on_evaluation(self.trainer, self, evaluation)
        self.reset_evaluation()

    def on_validation_epoch_start(self) -> None:
        self.reset_evaluation()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self.reset_evaluation()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluation_step(batch, self.test_split)

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation(self.test_split)

    # -- helpers for subclasses -------------------------------------------------------------------
    def gather_objects(self, items: List[Any]) -> List[Any]:
        """Every rank's items, concatenated in rank order (a single process: its own)."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return items
        everyone: List[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(everyone, items)
        return [item for rank_items in everyone for item in rank_items]

"""attnlab's own callbacks (Lightning's built-ins are configured in conf/callbacks). They work for
any task, through the task's interface (:mod:`attnlab.tasks.base`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import lightning as L
import torch

from attnlab.tasks.base import AttentionExample, Evaluation, EvaluationCallback


class TokenThroughput(L.Callback):
    """Logs training throughput in tokens (as the task counts them) per second of training-step time.

    The first ``skip_steps`` steps (allocator and kernel warm-up) are left out of the average
    when the run has more steps than that.
    """

    def __init__(self, skip_steps: int = 5):
        self.skip_steps = skip_steps
        self.tokens = 0
        self.seconds = 0.0
        self.warmup_tokens = 0
        self.warmup_seconds = 0.0
        self._start = 0.0
        self._steps = 0

    @property
    def tokens_per_sec(self) -> float:
        tokens, seconds = (self.tokens, self.seconds) if self.seconds > 0 else (self.warmup_tokens, self.warmup_seconds)
        return tokens / seconds if seconds > 0 else 0.0

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        seconds = time.perf_counter() - self._start
        tokens = pl_module.batch_tokens(batch)
        self._steps += 1
        if self._steps <= self.skip_steps:
            self.warmup_tokens += tokens
            self.warmup_seconds += seconds
        else:
            self.tokens += tokens
            self.seconds += seconds
        pl_module.log("train/tokens_per_sec", self.tokens_per_sec, on_step=True, on_epoch=False, batch_size=1)


class EarlyStopping(L.pytorch.callbacks.EarlyStopping):
    """Lightning's early stopping, except that a check before any validation has run is no check.

    A run shorter than one validation interval (``trainer.max_steps=5`` on a long epoch) reaches
    the end of its epoch without the monitored metric, and Lightning's strict mode stops it there
    with a traceback; the pipeline validates such a run once at its end instead. Once a validation
    has run, a monitor that is missing is still the error it was (a mistyped ``task.monitor``).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.validated = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True
        super().on_validation_end(trainer, pl_module)

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        if not self.validated and self.monitor not in trainer.callback_metrics:
            return
        super()._run_early_stopping_check(trainer)


class EvaluationRecorder(EvaluationCallback):
    """Keeps the latest evaluation of each split for the run's result, and writes its predictions
    to ``<split>_<task.prediction_name>.txt`` and its per-example records to
    ``<split>_examples.jsonl`` in the run directory (rank 0 only); ``examples`` describes the
    latter for metrics.json. The pipeline and eval.py add it themselves: every run records its
    results."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.latest: Dict[str, Evaluation] = {}
        self.examples: Dict[str, Dict[str, Any]] = {}  # split -> its description (attnlab.stats.examples)

    def on_evaluation(self, trainer, task, evaluation: Evaluation) -> None:
        if trainer.sanity_checking:
            return
        from attnlab.stats import examples

        split = evaluation.split
        self.latest[split] = evaluation
        if evaluation.records:
            measures = {f"{split}/{name}": m for name, m in task.example_measures.items() if f"{split}/{name}" in evaluation.metrics}
            self.examples[split] = examples.describe(split, evaluation.records, task.example_identity, measures)
        if trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / f"{split}_{task.prediction_name}.txt"
            path.write_text("".join(line + "\n" for line in evaluation.predictions), encoding="utf-8")
            if evaluation.records:
                examples.write(self.output_dir, split, evaluation.records)


class EvalArtifacts(EvaluationCallback):
    """After each validation and the test: example predictions, the task's curves (BLEU by source
    length) and matrices (a confusion matrix), and attention heatmaps for a fixed set of examples,
    to W&B (and TensorBoard). After the test it also saves the figures as PNG files (heatmaps in
    ``heatmaps/``, the task's figures beside metrics.json) and the first example's alignment as
    JSON, for the sweep report.
    """

    def __init__(self, num_examples: int = 4, num_heatmaps: int = 2, heatmap_dir: str = "heatmaps", attention_view: bool = False):
        self.num_examples = num_examples
        self.num_heatmaps = num_heatmaps
        self.heatmap_dir = heatmap_dir
        # the same examples as attnlab-view's page (every kind, layer and head; hover a token), a
        # W&B HTML panel at each evaluation: opt-in, as each page holds every weight of its examples
        self.attention_view = attention_view

    def on_evaluation(self, trainer, task, evaluation: Evaluation) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from attnlab import plots

        rows = evaluation.examples[: self.num_examples]
        examples = task.attention_examples(evaluation.inputs[: self.num_heatmaps]) if self.num_heatmaps else []
        images = {}  # name -> PNG bytes, each figure drawn once
        for i, example in enumerate(examples):
            for kind, amap in example.maps.items():
                title = f"{kind} attention, {evaluation.split} example {i}: {example.caption}"
                images[f"attention/{kind}/example_{i}"] = plots.render_png(plots.attention_figure(amap.layers, amap.rows, amap.cols, title))
        for name, heatmap in evaluation.heatmaps.items():
            images[name] = plots.render_png(plots.matrix_figure(heatmap.values, heatmap.rows, heatmap.cols, heatmap.title, heatmap.row_axis, heatmap.col_axis))
        stage, step = evaluation.split, trainer.global_step
        loggers = _by_kind(trainer.loggers)
        if "wandb" in loggers:
            import wandb

            logger = loggers["wandb"]
            if rows:
                columns = list(rows[0])
                logger.log_text(key=f"{stage}/examples", columns=columns, data=[[r[c] for c in columns] for r in rows], step=step)
            payload: Dict[str, Any] = {"trainer/global_step": step}
            for name, curve in evaluation.curves.items():
                columns = list(curve.rows[0]) if curve.rows else [curve.x, curve.y]
                table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in curve.rows])
                payload[f"{stage}/{name}"] = table
                payload[f"{stage}/{name}_chart"] = wandb.plot.line(table, curve.x, curve.y, title=curve.title)
            payload.update({f"{stage}/{name}": wandb.Image(plots.png_to_array(png)) for name, png in images.items()})
            if self.attention_view and examples:
                from attnlab.heads.viewer import render

                page = render(evaluation.inputs[: len(examples)], examples, f"{stage} attention at step {step}")
                payload[f"{stage}/attention_view"] = wandb.Html(page, inject=False)
            logger.experiment.log(payload)
        if "tensorboard" in loggers:
            writer = loggers["tensorboard"].experiment
            if rows:
                writer.add_text(f"{stage}/examples", "\n\n".join("  \n".join(f"**{k}** {v}" for k, v in r.items()) for r in rows), step)
            for name, curve in evaluation.curves.items():
                for r in curve.rows:
                    writer.add_scalar(f"{stage}/{name}/{r.get('bucket', r[curve.x])}", r[curve.y], step)
            for name, png in images.items():
                writer.add_image(f"{stage}/{name}", plots.png_to_array(png), step, dataformats="HWC")
        if trainer.testing:
            self._save(Path(trainer.default_root_dir), images, examples, task.alignment_kind)

    def _save(self, out_dir: Path, images: dict, examples: List[AttentionExample], alignment_kind) -> None:
        heatmaps = out_dir / self.heatmap_dir
        heatmaps.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            if name.startswith("attention/"):
                (heatmaps / f"{name[len('attention/'):].replace('/', '_')}.png").write_bytes(png)
            else:  # the task's own figures (a confusion matrix) sit in the run directory
                (out_dir / f"{name.replace('/', '_')}.png").write_bytes(png)
        if examples and alignment_kind in examples[0].maps:
            amap = examples[0].maps[alignment_kind]
            weights = amap.layers[-1].mean(axis=0)  # last layer, averaged over heads: (T, S)
            payload = {"source": amap.cols, "output": amap.rows, "weights": weights.round(4).tolist()}
            (out_dir / "attention_example.json").write_text(json.dumps(payload) + "\n")


def _by_kind(loggers) -> dict:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    kinds = {}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            kinds["wandb"] = logger
        elif isinstance(logger, TensorBoardLogger):
            kinds["tensorboard"] = logger
    return kinds


class ResumeState(L.Callback):
    """What an exact mid-epoch resume needs beyond Lightning's own checkpoint: the batch sampler's
    position (how many batches of the epoch are done) and the global RNG state (dropout masks).

    The sampler state is restored here rather than through Lightning's dataloader-state hook:
    Lightning skips that hook when the train dataloader was built before the checkpoint was
    restored (as ``estimated_stepping_batches`` in ``configure_optimizers`` does).
    """

    def __init__(self):
        self._pending: dict = {}

    @staticmethod
    def _sampler(trainer):
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        return sampler if hasattr(sampler, "consumed") else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        sampler = self._sampler(trainer)
        if sampler is not None:
            sampler.consumed = batch_idx + 1  # checkpoints written after this step resume after it

    def state_dict(self) -> dict:
        return {"torch_rng": torch.get_rng_state()}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        sampler = self._sampler(trainer)
        if sampler is not None:
            checkpoint["attnlab_sampler"] = sampler.state_dict()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "attnlab_sampler" in checkpoint:
            self._pending["sampler"] = checkpoint["attnlab_sampler"]

    def load_state_dict(self, state: dict) -> None:
        self._pending["torch_rng"] = state.get("torch_rng")

    def on_train_start(self, trainer, pl_module) -> None:
        sampler = self._sampler(trainer)
        if sampler is not None and "sampler" in self._pending:
            sampler.load_state_dict(self._pending["sampler"])
        if self._pending.get("torch_rng") is not None:
            torch.set_rng_state(self._pending["torch_rng"])
        self._pending = {}

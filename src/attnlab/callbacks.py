"""Callbacks of our own (Lightning's built-ins are configured in conf/callbacks)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from attnlab.data.vocab import PAD_ID
from attnlab.tasks.translation import ATTENTION_AXES


class TokenThroughput(L.Callback):
    """Logs training throughput in (source + target) tokens per second of training-step time.

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
        tokens = int(batch["src"].ne(PAD_ID).sum()) + int(batch["tgt"][:, 1:].ne(PAD_ID).sum())
        self._steps += 1
        if self._steps <= self.skip_steps:
            self.warmup_tokens += tokens
            self.warmup_seconds += seconds
        else:
            self.tokens += tokens
            self.seconds += seconds
        pl_module.log("train/tokens_per_sec", self.tokens_per_sec, on_step=True, on_epoch=False, batch_size=1)


class EvalArtifacts(L.Callback):
    """After each validation and the test: example translations, BLEU by source length and
    attention heatmaps for a fixed set of examples, to W&B (and TensorBoard). After the test it
    also saves the heatmaps as PNG files and the first example's alignment as JSON in the run
    directory, for the sweep report.
    """

    def __init__(self, num_examples: int = 4, num_heatmaps: int = 2, heatmap_dir: str = "heatmaps"):
        self.num_examples = num_examples
        self.num_heatmaps = num_heatmaps
        self.heatmap_dir = heatmap_dir

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._publish(trainer, pl_module, "val", save=False)

    def on_test_end(self, trainer, pl_module) -> None:
        self._publish(trainer, pl_module, "test", save=True)

    def _publish(self, trainer, pl_module, stage: str, save: bool) -> None:
        evaluation = getattr(pl_module, "last_eval", {}).get(stage)
        if evaluation is None or not trainer.is_global_zero:
            return
        from attnlab import plots

        n = self.num_examples
        rows = [list(r) for r in zip(evaluation["sources"][:n], evaluation["hypotheses"][:n], evaluation["references"][:n])]
        maps = pl_module.attention_maps(evaluation["sources"][: self.num_heatmaps]) if self.num_heatmaps else []
        images = {}  # name -> PNG bytes, each figure drawn once
        for i, example in enumerate(maps):
            for kind, layers in example["weights"].items():
                row_name, col_name = ATTENTION_AXES[kind]
                title = f"{kind} attention, {stage} example {i}: {example['hypothesis']}"
                images[f"{kind}/example_{i}"] = plots.render_png(plots.attention_figure(layers, example[row_name], example[col_name], title))
        step = trainer.global_step
        loggers = _by_kind(trainer.loggers)
        if "wandb" in loggers:
            import wandb

            logger = loggers["wandb"]
            logger.log_text(key=f"{stage}/examples", columns=["source", "hypothesis", "reference"], data=rows, step=step)
            table = wandb.Table(columns=["bucket", "min_len", "n", "bleu"], data=[[r["bucket"], r["min_len"], r["n"], r["bleu"]] for r in evaluation["bleu_by_length"]])
            logger.experiment.log(
                {
                    f"{stage}/bleu_by_length": table,
                    f"{stage}/bleu_by_length_chart": wandb.plot.line(table, "min_len", "bleu", title=f"{stage} BLEU by source length"),
                    **{f"{stage}/attention/{name}": wandb.Image(plots.png_to_array(png)) for name, png in images.items()},
                    "trainer/global_step": step,
                }
            )
        if "tensorboard" in loggers:
            writer = loggers["tensorboard"].experiment
            writer.add_text(f"{stage}/examples", "\n\n".join(f"**src** {s}  \n**hyp** {h}  \n**ref** {r}" for s, h, r in rows), step)
            for r in evaluation["bleu_by_length"]:
                writer.add_scalar(f"{stage}/bleu_by_length/{r['bucket']}", r["bleu"], step)
            for name, png in images.items():
                writer.add_image(f"{stage}/attention/{name}", plots.png_to_array(png), step, dataformats="HWC")
        if save:
            self._save(Path(getattr(pl_module, "output_dir", None) or trainer.default_root_dir), images, maps)

    def _save(self, out_dir: Path, images: dict, maps: list) -> None:
        heatmaps = out_dir / self.heatmap_dir
        heatmaps.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (heatmaps / f"{name.replace('/', '_')}.png").write_bytes(png)
        if maps:
            first = maps[0]
            cross = first["weights"]["cross"][-1].mean(axis=0)  # last layer, averaged over heads: (T, S)
            payload = {"source": first["source"], "output": first["output"], "weights": cross.round(4).tolist()}
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

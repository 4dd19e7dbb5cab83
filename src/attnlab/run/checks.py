"""Checks of a composed config that must fail before any training, naming the key to change.

:func:`check_config` needs only OmegaConf: train.py and eval.py run it before importing Lightning,
so a mistyped value costs a second, not a start-up and a traceback.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from attnlab import components
from attnlab.arguments import SEED_MAX
from attnlab.errors import AttnlabError, ConfigError

Rule = Tuple[Callable[[Any], bool], str]  # (accepts the value, what the value must be)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


POSITIVE_INT: Rule = (lambda v: _integer(v) and v > 0, "a positive integer")
NON_NEGATIVE_INT: Rule = (lambda v: _integer(v) and v >= 0, "an integer >= 0")
EPOCHS: Rule = (lambda v: _integer(v) and v >= -1, "an integer >= 0 (or -1: no limit)")
POSITIVE: Rule = (lambda v: _number(v) and v > 0, "a number > 0")
NON_NEGATIVE: Rule = (lambda v: _number(v) and v >= 0, "a number >= 0")
PROBABILITY: Rule = (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)")
FRACTION: Rule = (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]")
OPEN_UNIT: Rule = (lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)")
SEED: Rule = (lambda v: _integer(v) and 0 <= v <= SEED_MAX, f"an integer in [0, {SEED_MAX}]")
STEPS: Rule = (lambda v: _integer(v) and (v >= 1 or v == -1), "a positive integer (or -1: no limit); train=false evaluates without training")

BOOLEAN: Rule = (lambda v: isinstance(v, bool), "true or false")


def up_to(limit: int) -> Rule:
    """A positive integer no larger than ``limit``: sizes past it would exhaust memory before the
    first step, with a traceback from deep inside torch."""
    return (lambda v: _integer(v) and 0 < v <= limit, f"a positive integer up to {limit}")


WIDTH, DEPTH = up_to(65536), up_to(1024)


HEAD_MASK_FORM = "null, a list of heads to switch off ([cross.0.3, encoder_self.1]) or a mapping of kind to per-layer rows of gates ({cross: [[1, 0, 1, 1], ...]})"


def head_mask_form(value: Any) -> bool:
    """task.head_mask's form; its kinds and shape are checked against the model (attnlab.heads.gates)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return True
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def optional(rule: Rule) -> Rule:
    accepts, what = rule
    return (lambda v: v is None or accepts(v), f"{what} or null")


# every numeric key a user types, wherever it lives; keys a config does not have are skipped
TRAIN_RULES: Dict[str, Rule] = {
    "seed": SEED,
    "keep_freed_memory": BOOLEAN,
    "interval_resamples": (lambda v: _integer(v) and (v == 0 or 100 <= v <= 100_000), "0 (no intervals) or an integer in [100, 100000]"),
    "data.seed": SEED,
    "data.batch_size": POSITIVE_INT,
    "data.eval_batch_size": POSITIVE_INT,
    "data.max_tokens": optional(POSITIVE_INT),
    "data.eval_max_tokens": optional(POSITIVE_INT),
    "data.block_size": up_to(1 << 20),
    "data.test_block_size": optional(POSITIVE_INT),
    "data.num_workers": NON_NEGATIVE_INT,
    "data.max_len": (lambda v: _integer(v) and v >= 3, "an integer >= 3 (<bos>, a token, <eos>)"),
    "data.train_size": optional(POSITIVE_INT),
    "data.labels_per_class": optional(POSITIVE_INT),
    "data.corpus.train_size": POSITIVE_INT,
    "data.corpus.val_size": POSITIVE_INT,
    "data.corpus.test_size": POSITIVE_INT,
    "data.corpus.max_digits": POSITIVE_INT,
    "data.corpus.train_max_digits": optional(POSITIVE_INT),
    "data.bpe.vocab_size": up_to(1 << 20),
    "data.bpe.min_frequency": POSITIVE_INT,
    "arch.d_model": WIDTH,
    "arch.emb_dim": WIDTH,
    "arch.d_ff": up_to(1 << 18),
    "arch.num_layers": DEPTH,
    "arch.num_encoder_layers": DEPTH,
    "arch.num_decoder_layers": DEPTH,
    "arch.dropout": PROBABILITY,
    "attention.num_heads": DEPTH,
    "attention.num_kv_heads": optional(DEPTH),
    "attention.d_attn": optional(WIDTH),
    "attention.max_chunk_elements": optional(POSITIVE_INT),
    "attention.dropout": PROBABILITY,
    "attention.window": up_to(1 << 20),
    "attention.num_features": optional(up_to(1 << 16)),
    "attention.chunk": up_to(1 << 16),
    "attention.seed": SEED,
    "attention.kv_latent_dim": optional(WIDTH),
    "attention.rope_dim": optional(WIDTH),
    "attention.absorb": BOOLEAN,
    "attention.lambda_init": optional(PROBABILITY),
    "pos_enc.max_len": up_to(1 << 20),
    "pos_enc.dropout": PROBABILITY,
    "pos_enc.base": POSITIVE,
    "pos_enc.num_buckets": (lambda v: _integer(v) and v >= 4, "an integer >= 4"),
    "pos_enc.max_distance": POSITIVE_INT,
    "task.optimizer.lr": POSITIVE,
    "task.optimizer.weight_decay": NON_NEGATIVE,
    "task.optimizer.fused": optional(BOOLEAN),
    "task.scheduler.warmup_steps": NON_NEGATIVE_INT,
    "task.scheduler.min_ratio": FRACTION,
    "task.label_smoothing": PROBABILITY,
    "task.max_len_a": NON_NEGATIVE,
    "task.max_len_b": NON_NEGATIVE_INT,
    "task.decoding.beam_size": up_to(256),
    "task.decoding.alpha": NON_NEGATIVE,
    "task.length_bucket": POSITIVE_INT,
    "task.classifier_dropout": PROBABILITY,
    "task.encoder_lr_scale": POSITIVE,
    "task.mask_prob": OPEN_UNIT,
    "task.num_samples": NON_NEGATIVE_INT,
    "task.sample_tokens": NON_NEGATIVE_INT,
    "task.temperature": NON_NEGATIVE,
    "task.top_k": optional(POSITIVE_INT),
    "task.top_p": optional((lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]")),
    "task.mask_token_prob": FRACTION,
    "task.head_mask": (head_mask_form, HEAD_MASK_FORM),
    "task.random_token_prob": FRACTION,
    "trainer.max_epochs": optional(STEPS),
    "trainer.min_epochs": optional(NON_NEGATIVE_INT),
    "trainer.max_steps": STEPS,
    "trainer.accumulate_grad_batches": POSITIVE_INT,
    "trainer.gradient_clip_val": optional(NON_NEGATIVE),
    "trainer.check_val_every_n_epoch": optional(POSITIVE_INT),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.num_sanity_val_steps": EPOCHS,
    "callbacks.early_stopping.patience": NON_NEGATIVE_INT,
    "callbacks.last_checkpoint.every_n_train_steps": optional(POSITIVE_INT),
    "callbacks.eval_artifacts.num_examples": NON_NEGATIVE_INT,
    "callbacks.eval_artifacts.num_heatmaps": NON_NEGATIVE_INT,
}
EVAL_RULES: Dict[str, Rule] = {
    "seed": SEED,
    "task.head_mask": (head_mask_form, HEAD_MASK_FORM),
    "decoding.beam_size": optional(up_to(256)),
    "decoding.alpha": optional(NON_NEGATIVE),
}
_ABSENT = object()


def check_required_values(cfg: DictConfig) -> None:
    """Keys left at ``???`` (e.g. data=parallel_files's file paths) fail here, by name."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required value(s): {', '.join(missing)}; set them on the command line, e.g. {missing[0]}=...")


def check_values(cfg: DictConfig, rules: Dict[str, Rule]) -> None:
    for key, (accepts, what) in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT and not accepts(value):
            raise ConfigError(f"{key}={value} must be {what}")


def check_fp16_clipping(cfg: DictConfig) -> None:
    """Under fp16 a fused optimizer unscales the gradients inside its step, after clipping would
    have run on scaled ones (Lightning stops such a run at its first step)."""
    precision = str(OmegaConf.select(cfg, "trainer.precision", default=""))
    fused = OmegaConf.select(cfg, "task.optimizer.fused", default=None)
    clip = OmegaConf.select(cfg, "trainer.gradient_clip_val", default=None)
    if precision in ("16-mixed", "16", "16-true") and fused and clip:
        raise ConfigError(
            f"trainer.precision={precision} cannot clip gradients (trainer.gradient_clip_val={clip}) for a fused optimizer: "
            "set task.optimizer.fused=false, or trainer.precision=bf16-mixed"
        )


def check_window(cfg: DictConfig) -> None:
    """A sliding window as long as a language model's block is full attention, paid for twice."""
    window = OmegaConf.select(cfg, "attention.window", default=None)
    block = OmegaConf.select(cfg, "data.block_size", default=None)
    if isinstance(window, int) and isinstance(block, int) and window >= block:
        raise ConfigError(
            f"attention.window={window} is not smaller than data.block_size={block}: every query would see the whole "
            "block, which is attention=multihead; choose a smaller window"
        )


def check_config(cfg: DictConfig, rules: Dict[str, Rule] = TRAIN_RULES) -> None:
    """Everything about a composed config that can be checked before any data or model exists."""
    check_required_values(cfg)
    check_values(cfg, rules)
    check_fp16_clipping(cfg)
    check_window(cfg)


def check_model_config(cfg: DictConfig, longest_sequence: Optional[int] = None, data_name: str = "") -> None:
    """A learned position table that the data's longest sequence would run past (the model's own
    checks, e.g. heads that do not divide the width, run when it is built: check_model_builds)."""
    max_len = cfg.pos_enc.get("max_len")
    if max_len is not None and longest_sequence is not None and max_len < longest_sequence:
        raise ConfigError(
            f"pos_enc.max_len={max_len} is shorter than the longest sequence of data={data_name} "
            f"({longest_sequence} tokens); raise pos_enc.max_len to at least {longest_sequence}"
        )


def config_spec(node: DictConfig, key: str) -> Dict[str, Any]:
    """A composed config group as a component spec (what checkpoints store)."""
    try:
        return components.spec_from_config(OmegaConf.to_container(node, resolve=True), key)
    except AttnlabError as exc:
        raise ConfigError(str(exc)) from None


def check_model_builds(cfg: DictConfig) -> None:
    """The model's components fit together (attention=none in a transformer, rotary positions
    without dot-product scores, key/value heads that do not divide the heads, ...): the task's
    model is built once on the meta device (no memory, no weights) with a toy vocabulary, so
    such a setting fails in about a second, before Lightning and the data are loaded."""
    from attnlab.models.factory import dry_build

    task = OmegaConf.select(cfg, "choices.task", default=None)
    specs = {key: config_spec(cfg[key], key) for key in ("arch", "attention", "pos_enc")}
    try:
        dry_build(task, **specs, pooling=OmegaConf.select(cfg, "task.pooling", default=None))
    except AttnlabError:
        raise
    except (ValueError, TypeError) as exc:  # a component's own refusal, in the config's words
        raise ConfigError(str(exc)) from None

"""Callbacks of our own (Lightning's built-ins are configured in conf/callbacks)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from attnlab.data.vocab import PAD_ID


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

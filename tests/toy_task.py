"""A task that lives entirely outside attnlab: reverse a sequence of digits.

It proves the seam: a new task (its LightningModule, its datamodule, its metric, its configs in
tests/conf) trains through the real pipeline — train.py, loggers, callbacks, metrics.json, the
sweep report — with any arch x attention x pos_enc, and nothing under src/attnlab changes.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from attnlab import components
from attnlab.decoding import greedy_decode
from attnlab.models.factory import build_seq2seq
from attnlab.tasks.base import Evaluation, Task

DIGITS = [str(d) for d in range(10)]
PAD, BOS, EOS = 0, 1, 2
VOCAB = ["<pad>", "<bos>", "<eos>", *DIGITS]


def encode(text: str) -> List[int]:
    return [VOCAB.index(d) for d in text.split()]


def pad(rows: List[List[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


@components.register("datamodule", "reverse")
class ReverseDataModule(L.LightningDataModule):
    def __init__(self, sizes: Dict[str, int], min_len: int = 2, max_len: int = 6, seed: int = 0, batch_size: int = 16, shuffle_seed: int = 0):
        super().__init__()
        rng = random.Random(seed)
        self.splits = {
            split: [" ".join(rng.choices(DIGITS, k=rng.randint(min_len, max_len))) for _ in range(size)] for split, size in sizes.items()
        }
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.longest_sequence = max_len + 2  # with BOS and EOS: what a learned position table must hold

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        def collate(items):
            indices = [i for i, _ in items]
            texts = [t for _, t in items]
            return {
                "index": torch.tensor(indices),
                "src": pad([encode(t) + [EOS] for t in texts]),
                "tgt": pad([[BOS, *encode(t)[::-1], EOS] for t in texts]),
                "text": texts,
            }

        generator = torch.Generator().manual_seed(self.shuffle_seed)
        return DataLoader(list(enumerate(self.splits[split])), self.batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


@components.register("task", "reverse")
class ReverseTask(Task):
    name = "reverse"
    monitor = "val/seq_acc"
    prediction_name = "reversed"
    report_columns = [("val acc", "val/seq_acc", True), ("test acc", "test/seq_acc", True)]
    batch_key = "src"

    def __init__(self, arch, attention, pos_enc, data=None, choices=None, optimizer=None, scheduler=None, monitor=None, monitor_mode=None):
        super().__init__(optimizer, scheduler, monitor, monitor_mode)
        self.save_hyperparameters({"task": self.name, "arch": arch, "attention": attention, "pos_enc": pos_enc}, logger=False)
        self.model = build_seq2seq(arch, attention, pos_enc, len(VOCAB), len(VOCAB), PAD)
        self.accuracy = MeanMetric()
        self._rows: List[tuple] = []

    def loss(self, batch: Dict[str, Any]) -> torch.Tensor:  # the base's training_step logs it
        logits, _ = self.model(batch["src"], batch["tgt"][:, :-1])
        return F.cross_entropy(logits.transpose(1, 2), batch["tgt"][:, 1:], ignore_index=PAD)

    def batch_tokens(self, batch: Dict[str, Any]) -> int:
        return int(batch["src"].ne(PAD).sum())

    def reset_evaluation(self) -> None:
        self.accuracy.reset()
        self._rows = []

    def evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        out, _ = greedy_decode(self.model, batch["src"], BOS, EOS, batch["src"].size(1) + 1)
        for i, text in enumerate(batch["text"]):
            tokens = [VOCAB[t] for t in out[i].tolist() if t > EOS]
            predicted, expected = " ".join(tokens), " ".join(text.split()[::-1])
            self.accuracy.update(float(predicted == expected))
            self._rows.append((int(batch["index"][i]), text, predicted))

    def evaluation_end(self, split: str) -> Evaluation:
        rows = sorted(self.gather_objects(self._rows))
        return Evaluation(
            split=split,
            metrics={f"{split}/seq_acc": float(self.accuracy.compute())},
            predictions=[p for _, _, p in rows],
            inputs=[t for _, t, _ in rows],
            examples=[{"input": t, "reversed": p} for _, t, p in rows],
        )


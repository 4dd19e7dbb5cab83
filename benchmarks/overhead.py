"""Framework overhead: the Lightning Trainer vs a hand-written PyTorch loop on the same model
and batches, interleaved in blocks so machine noise hits both alike.

Both do the same work per step: forward, the task's loss, backward, gradient clipping, AdamW,
LR schedule. The Trainer also runs attnlab's training callbacks (throughput) and metric
logging, as in a real run. Prints the ratio of median step times. Any experiment's task and
data: the default translation transformer, or e.g. the character-level GPT.

    python benchmarks/overhead.py [--steps N] [--blocks K] [OVERRIDE ...]
    python benchmarks/overhead.py experiment=shakespeare_char
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import lightning as L
import torch
from composed import task_and_data

from attnlab.run.callbacks import TokenThroughput


class StepTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []
        self._last = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now

    def on_train_epoch_end(self, trainer, pl_module):
        self._last = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per block")
    parser.add_argument("--blocks", type=int, default=4, help="blocks of each, interleaved")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: the default experiment)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task, dm = task_and_data(args.overrides)
    batches = list(itertools.islice(iter(dm.train_dataloader()), args.steps))
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)

    def manual_block() -> list[float]:
        optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200))
        task.train()
        times, last = [], None
        for batch in loader:
            now = time.perf_counter()
            if last is not None:
                times.append(now - last)
            last = now
            loss = task.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        return times

    def lightning_block() -> list[float]:
        timer = StepTimer()
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
            gradient_clip_val=1.0, log_every_n_steps=20, callbacks=[timer, TokenThroughput()],
        )
        trainer.fit(task, train_dataloaders=loader)
        return timer.times

    times = {"lightning": [], "manual": []}
    for block in range(args.blocks):
        times["manual"].extend(manual_block())
        times["lightning"].extend(lightning_block())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.blocks} blocks x {args.steps} steps, {' '.join(args.overrides) or 'the default experiment'} ({sum(p.numel() for p in task.parameters()):,} params), batch {dm.batch_size}")
    print(f"median step: Lightning {med['lightning'] * 1e3:.1f} ms, hand-written {med['manual'] * 1e3:.1f} ms, "
          f"ratio = {med['lightning'] / med['manual']:.3f}")


if __name__ == "__main__":
    main()

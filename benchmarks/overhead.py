"""Framework overhead: the Lightning Trainer vs a hand-written PyTorch loop on the same model
and batches, in blocks whose order rotates each round so machine noise hits both alike.

Both do the same work per step: forward, the task's loss, backward, gradient clipping, AdamW,
LR schedule. The Trainer also runs attnlab's training callbacks (throughput) and metric
logging, as in a real run. Reports the median of per-round ratios of median step times, with
their spread; writes benchmarks/results/overhead[_<experiment>].json. Any experiment's task and
data: the default translation transformer, or e.g. the character-level GPT.

    python benchmarks/overhead.py [--steps N] [--blocks K] [OVERRIDE ...]
    python benchmarks/overhead.py experiment=shakespeare_char
    python benchmarks/overhead.py --bf16 arch.d_model=512 arch.d_ff=2048   # also bf16-mixed through the Trainer
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import lightning as L
import torch
from composed import task_and_data
from harness import environment, publish, ratio_summary, rotate, spread

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
    parser.add_argument("--blocks", type=int, default=4, help="rounds: one block of each per round, order rotated")
    parser.add_argument("--bf16", action="store_true", help="also the Trainer with precision=bf16-mixed (its speed-up over fp32)")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: the default experiment)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task, dm = task_and_data(args.overrides)
    batches = list(itertools.islice(iter(dm.train_dataloader()), args.steps))
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)

    def manual_block() -> list[float]:
        optimizer = task.optimizer_factory(task.optimizer_parameters())  # the optimizer the Trainer gets
        scheduler = task.scheduler_factory(optimizer, total_steps=args.steps) if task.scheduler_factory else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
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

    def lightning_block(precision: str = "32-true") -> list[float]:
        timer = StepTimer()
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, precision=precision, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
            gradient_clip_val=1.0, log_every_n_steps=20, callbacks=[timer, TokenThroughput()],
        )
        trainer.fit(task, train_dataloaders=loader)
        return timer.times

    blocks = {"lightning": lightning_block, "manual": manual_block}
    if args.bf16:
        blocks["lightning_bf16"] = lambda: lightning_block("bf16-mixed")
    per = rotate(blocks, args.blocks, lambda block: statistics.median(block()))
    ratio = ratio_summary(per["lightning"], per["manual"])
    what = " ".join(args.overrides) or "the default experiment"
    report = {
        **environment(args.blocks), "overrides": args.overrides, "steps_per_block": args.steps, "params": sum(p.numel() for p in task.parameters()),
        "step_ms": {k: 1000 * statistics.median(v) for k, v in per.items()}, "lightning_vs_manual": ratio,
    }
    rows = [
        ["model", f"{what} ({report['params']:,} params), batch {dm.batch_size}, {args.steps} steps a block"],
        ["median step, Lightning / hand-written", f"{report['step_ms']['lightning']:.1f} ms / {report['step_ms']['manual']:.1f} ms"],
        ["Lightning's time relative to the hand-written loop", spread(ratio)],
    ]
    if args.bf16:
        report["bf16_speedup"] = ratio_summary(per["lightning"], per["lightning_bf16"])
        rows.append(["trainer.precision=bf16-mixed vs 32-true (Trainer), speed-up", f"{spread(report['bf16_speedup'])} ({report['step_ms']['lightning_bf16']:.1f} ms a step)"])
    experiment = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("experiment=")), None)
    name = f"overhead_{experiment}" if experiment else "overhead"
    if args.bf16:
        name = "bf16_" + "_".join(o.replace("arch.", "").replace("=", "") for o in args.overrides) if args.overrides else "bf16"
    publish(name, f"Framework overhead: the Lightning Trainer vs a hand-written loop ({what})", rows, report)

if __name__ == "__main__":
    main()

"""What head gates cost a training step: the default experiment's task (or any, through train.py
overrides) trained one batch at a time in three variants, side by side, the order rotating each
round:

* before — attention as it was before gates existed (no gate check in the output projection, no
  weights-sink check in forward), patched in for the measurement;
* unset — today's code with no task.head_mask (what every training run is);
* ones — every head gated by 1 (what an evaluation with task.head_mask pays; the same numbers);
* before again — "before" a second time: its ratio to "before" is the noise of this machine, what
  "within noise" is measured against.

Reports median step times and the per-round ratios to "before" (median, min–max); writes
benchmarks/results/gates[_<overrides>].json.

    python benchmarks/gates.py [--rounds N] [--steps N] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch
from composed import task_and_data
from harness import environment, publish, ratio_summary, rotate, spread, step_time

from attnlab.attention.core import Attention
from attnlab.heads.gates import describe_heads, headed_layers, set_head_mask


def forward_before(self, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=False, causal=False):
    memory = self.project_memory(key, value)
    return self.attend(query, memory, key_padding_mask, attn_mask, need_weights, causal=causal)


def merge_before(self, out):
    B, H, T, w = out.shape
    return self.out_proj(out.transpose(1, 2).reshape(B, T, H * w))


@contextlib.contextmanager
def before():
    saved = Attention.forward, Attention._merge_heads
    Attention.forward, Attention._merge_heads = forward_before, merge_before
    try:
        yield
    finally:
        Attention.forward, Attention._merge_heads = saved


@contextlib.contextmanager
def gated_by_ones(model):
    set_head_mask(model, {kind: torch.ones(len(attns), attns[0].num_heads) for kind, attns in headed_layers(model).items()})
    try:
        yield
    finally:
        set_head_mask(model, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=15, help="training steps per variant and round (the median is taken)")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: the default experiment)")
    args = parser.parse_args()
    task, datamodule = task_and_data(["logger=none", *args.overrides])
    batch = next(iter(datamodule.train_dataloader()))
    variants = {"before": before, "unset": contextlib.nullcontext, "ones": lambda: gated_by_ones(task.model), "before again": before}

    def measure(context) -> float:
        with context():
            return step_time(task, batch, args.steps)

    step_time(task, batch, 3)  # warm-up: allocator, kernels
    times = rotate(variants, args.rounds, measure)
    ratios = {name: ratio_summary(times[name], times["before"]) for name in ("unset", "ones", "before again")}
    heads = describe_heads(headed_layers(task.model))
    rows = [[name, f"{statistics.median(times[name]) * 1e3:.1f} ms a step" + (f", {spread(ratios[name])} of before" if name in ratios else "")] for name in variants]
    suffix = "_" + "_".join(o.replace("=", "").replace(".", "").replace("/", "") for o in args.overrides) if args.overrides else ""
    publish(
        f"gates{suffix}",
        f"Head gates and the training step ({task.name}; heads: {heads}; batch of {task.batch_tokens(batch)} tokens)",
        rows,
        {**environment(args.rounds), "steps": args.steps, "times_s": times, "ratios_to_before": ratios},
    )


if __name__ == "__main__":
    main()

"""Length-bucketed batches (``data.max_tokens``) vs fixed batches of sentences on ``bible``.

Both samplers batch the same training split; the model is the bible transformer of
``experiment=bible_transformer`` at a smaller width. Prints the share of padding of each, and the
useful (non-padding) target tokens per second of training steps, measured in blocks whose order
rotates each round so machine noise hits both alike; writes benchmarks/results/batching.json. Needs the SWORD modules (see README, data=bible).

    python benchmarks/batching.py [--steps N] [--blocks K] [--max-tokens T] [--batch-size B]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from composed import task_and_data
from harness import environment, publish, ratio_summary, rotate, spread

from attnlab.data.datamodule import collate
from attnlab.data.sampling import ShardedBatchSampler, TokenBucketBatchSampler, padding_fraction


def useful_tokens_per_second(task, examples, batches) -> float:
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    tokens, started = 0, time.perf_counter()
    for indices in batches:
        batch = collate([examples[i] for i in indices])
        loss = task.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        tokens += int(batch["tgt"][:, 1:].ne(0).sum())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per block and sampler")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=0, help="sentences per fixed batch (default: the buckets' mean)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task, dm = task_and_data(["experiment=bible_transformer", "arch.d_model=128", "arch.d_ff=512"])
    task.train()
    examples = dm.splits["train"].examples
    src = [len(e.src_ids) for e in examples]
    tgt = [len(e.tgt_ids) for e in examples]
    lengths = [max(s, t) for s, t in zip(src, tgt)]
    buckets = list(TokenBucketBatchSampler(lengths, args.max_tokens, shuffle=True, seed=0))
    batch_size = args.batch_size or round(len(examples) / len(buckets))  # the same number of batches an epoch
    fixed = list(ShardedBatchSampler(len(examples), batch_size, shuffle=True, seed=0))
    blocks = iter(range(10**9))

    def rate(batches):  # each round takes the next slice of both batch lists
        block = next(blocks) // 2
        return useful_tokens_per_second(task, examples, batches[block * args.steps : (block + 1) * args.steps])

    rates = rotate({"buckets": buckets, "fixed": fixed}, args.blocks, rate)
    ratio = ratio_summary(rates["buckets"], rates["fixed"])
    report = {
        **environment(args.blocks), "pairs": len(examples), "max_tokens": args.max_tokens, "fixed_batch_size": batch_size,
        "padding": {"buckets": padding_fraction(buckets, src, tgt), "fixed": padding_fraction(fixed, src, tgt)},
        "useful_tokens_per_s": {k: statistics.median(v) for k, v in rates.items()}, "buckets_vs_fixed": ratio,
    }
    rows = [
        ["batches an epoch", f"{len(buckets)} token buckets (max_tokens={args.max_tokens}) vs {len(fixed)} fixed batches of {batch_size} sentences ({len(examples):,} pairs)"],
        ["padding share (source + target positions)", f"buckets {report['padding']['buckets']:.1%}, fixed {report['padding']['fixed']:.1%}"],
        ["useful target tokens/s, buckets / fixed", f"{spread(ratio)} ({report['useful_tokens_per_s']['buckets']:,.0f} vs {report['useful_tokens_per_s']['fixed']:,.0f}; transformer d 128)"],
    ]
    publish("batching", "Length-bucketed vs fixed batches on data=bible", rows, report)

if __name__ == "__main__":
    main()

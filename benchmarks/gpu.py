"""The GPU checks a CPU cannot make (never part of the tests; run by benchmarks/gpu.sh).

1. Training tokens/s of the transformer and of the Bahdanau RNN at equal width on one GPU, fp32
   and bf16 autocast: the lesson's claim that transformers parallelise where RNNs cannot (on
   2 CPU cores the RNN trains more tokens/s than the transformer; the claim can only show here).
2. The RNN's whole-sequence decoder against its step-by-step one on the GPU (cuDNN).

Variants rotate their order every round; ratios are medians of per-round ratios (min-max).
Writes benchmarks/results/gpu.json.

    python benchmarks/gpu.py [--rounds N] [--steps N] [--data bible]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from composed import task_and_data
from attention import bench_rnn
from harness import environment, publish, ratio_summary, rotate, spread


def tokens_per_second(task, batch, steps: int, bf16: bool) -> float:
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = task.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return steps * task.batch_tokens(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data", default="numbers", help="data= option (bible: longer sentences, needs the SWORD modules)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA GPU here; this benchmark runs only on a GPU machine")
    width = ["arch.d_model=256", f"data={args.data}", "data.max_tokens=null", "data.batch_size=128"]
    models = {
        "transformer": task_and_data(["arch=transformer", "attention=multihead", "arch.d_ff=1024", *width]),
        "rnn_bahdanau": task_and_data(["arch=rnn", "attention=additive", "arch.decoder=bahdanau", *width]),
    }
    variants, batches = {}, {}
    for name, (task, dm) in models.items():
        task.cuda().train()
        batch = next(iter(dm.train_dataloader()))
        batches[name] = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        for bf16 in (False, True):
            variants[f"{name}/{'bf16' if bf16 else 'fp32'}"] = (task, name, bf16)
    for task, name, bf16 in variants.values():
        tokens_per_second(task, batches[name], 3, bf16)  # warm-up: cuDNN plans, allocator
    per = rotate(variants, args.rounds, lambda v: tokens_per_second(v[0], batches[v[1]], args.steps, v[2]))
    report = {**environment(args.rounds), "device": torch.cuda.get_device_name(), "tokens_per_s": {k: statistics.median(v) for k, v in per.items()}}
    rows = [[f"train tokens/s, {k}", f"{v:,.0f}"] for k, v in report["tokens_per_s"].items()]
    for precision in ("fp32", "bf16"):
        r = ratio_summary(per[f"transformer/{precision}"], per[f"rnn_bahdanau/{precision}"])
        report[f"transformer_vs_rnn_{precision}"] = r
        rows.append([f"transformer / RNN tokens/s, {precision}", spread(r)])
    for cell in ("gru", "lstm"):
        row, report[f"rnn_{cell}_whole_sequence"] = bench_rnn(cell, "additive", args.rounds, device="cuda")
        rows.append(row)
    publish("gpu", f"On a GPU ({report['device']}): the transformer against the RNN, bf16 against fp32", rows, report)


if __name__ == "__main__":
    main()

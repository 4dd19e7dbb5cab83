"""The lesson's second half, measured side by side in one run (the order of the variants rotates
every round; ratios are medians of per-round ratios, with their min-max spread):

1. fine-tuning all-MiniLM-L6-v2 (classification, 32 tokens, batch 32): sequences/s with bf16
   autocast vs fp32;
2. WordNet glosses: the padding share of length-bucketed batches vs fixed-size batches (same
   number of batches);
3. masked-LM pre-training (encoder d 256, 4 layers, glosses) vs the translation transformer at
   equal width and depth (d 256, 2+2 layers, numbers): training tokens/s.

Writes benchmarks/results/text.json beside the console table.

    python benchmarks/text.py [--rounds N] [--steps N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections import Counter

import torch
from composed import task_and_data
from harness import environment, publish, ratio_summary, rotate, spread, step_time

from attnlab.data.sampling import ShardedBatchSampler, TokenBucketBatchSampler, padding_fraction


def same_length(examples, length, n: int = 64):
    """n examples of the most common length: a batch without padding, as token buckets make them
    (the first 64 glosses padded to their longest were three quarters padding)."""
    common = Counter(length(e) for e in examples).most_common(1)[0][0]
    return [e for e in examples if length(e) == common][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="training steps per measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    quiet = ["logger=none", "~callbacks.progress_bar"]
    report = {**environment(args.rounds), "cpu": platform.processor() or platform.machine()}

    # 1. MiniLM fine-tuning, bf16 vs fp32
    minilm, dm = task_and_data(["task=classification", "data=wordnet", "task.pretrained=minilm", "pos_enc=learned", "data.max_len=32", *quiet])
    examples = [e for e in dm.splits["train"].examples if len(e.ids) == 32][:32]
    batch = dm.collate(examples)
    per = rotate({"bf16": True, "fp32": False}, args.rounds, lambda bf16: step_time(minilm, batch, args.steps, bf16))
    report["minilm_finetune"] = {
        "sequences_per_s": {k: 32 / statistics.median(v) for k, v in per.items()},
        "bf16_speedup": ratio_summary(per["fp32"], per["bf16"]),
    }

    # 2. padding share of WordNet batches
    _, words = task_and_data(["task=classification", "data=wordnet", "data.tokenizer=bpe", *quiet])
    lengths = [len(e.ids) for e in words.splits["train"].examples]
    buckets = list(TokenBucketBatchSampler(lengths, max_tokens=2048, shuffle=True, seed=1))
    fixed = list(ShardedBatchSampler(len(lengths), max(1, len(lengths) // len(buckets)), shuffle=True, seed=1))
    report["wordnet_padding"] = {"buckets": padding_fraction(buckets, lengths), "fixed": padding_fraction(fixed, lengths), "batches": len(buckets)}

    # 3. MLM pre-training vs translation at equal width and depth
    mlm, mlm_dm = task_and_data(["task=mlm", "data=wordnet", "data.tokenizer=bpe", "arch.d_model=256", "arch.num_encoder_layers=4", "arch.d_ff=1024", *quiet])
    mt, mt_dm = task_and_data(["arch.d_model=256", "arch.num_encoder_layers=2", "arch.num_decoder_layers=2", "arch.d_ff=1024", *quiet])
    mlm_batch = mlm_dm.collate(same_length(mlm_dm.splits["train"].examples, lambda e: len(e.ids)))
    mt_batch = mt_dm.collate(same_length(mt_dm.splits["train"].examples, lambda e: max(len(e.src_ids), len(e.tgt_ids))))
    jobs = {"mlm": (mlm, mlm_batch), "translation": (mt, mt_batch)}
    per = rotate(jobs, args.rounds, lambda job: job[0].batch_tokens(job[1]) / step_time(job[0], job[1], args.steps, False))
    report["mlm_vs_translation_tokens_per_s"] = {k: statistics.median(v) for k, v in per.items()}
    report["mlm_vs_translation_tokens_per_s"]["ratio"] = ratio_summary(per["mlm"], per["translation"])

    m, p, t = report["minilm_finetune"], report["wordnet_padding"], report["mlm_vs_translation_tokens_per_s"]
    rows = [
        ["MiniLM fine-tuning, 32 x 32 tokens", f"bf16 {m['sequences_per_s']['bf16']:.1f} seq/s, fp32 {m['sequences_per_s']['fp32']:.1f} seq/s; bf16 {spread(m['bf16_speedup'])}"],
        ["WordNet padding share", f"length buckets {100 * p['buckets']:.1f} % vs fixed batches {100 * p['fixed']:.1f} % of positions ({p['batches']} batches)"],
        ["training tokens/s, MLM (d 256, 4 layers) vs translation (d 256, 2+2)", f"{t['mlm']:,.0f} vs {t['translation']:,.0f}, ratio {spread(t['ratio'])}"],
    ]
    publish("text", "The text tasks: MiniLM fine-tuning in bf16, WordNet padding, MLM throughput", rows, report)

if __name__ == "__main__":
    main()

"""Decoding speed, side by side in one run (the order rotating every round), as ratios:

1. the transformer's greedy decoding of 64 tokens, batch 32: key/value cache vs recomputing the
   prefix at every step;
2. beam search (beam 5) vs greedy, both cached, for the transformer and the Bahdanau RNN (whose
   decoder is step-wise by nature: its state is its cache).

Models at the default experiment's sizes (d 128; transformer 3+3 layers, 4 heads; RNN GRU).
The process keeps freed memory (attnlab.run.memory), as attnlab-translate and eval.py run.
Writes benchmarks/results/decoding.json.

    python benchmarks/decoding.py [--rounds N]
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch
from harness import environment, publish, ratio_summary, rotate, seconds, spread

from attnlab.attention import AdditiveAttention, MultiHeadAttention
from attnlab.decoding import beam_search, greedy_decode
from attnlab.models import RNNSeq2Seq, TransformerSeq2Seq
from attnlab.positional import NoPositionalEncoding, SinusoidalPositionalEncoding
from attnlab.run.memory import keep_freed_memory

B, SRC_LEN, STEPS, V = 32, 20, 64, 200
NEVER = -1  # an EOS id no step produces: every sentence runs the full 64 steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    transformer = TransformerSeq2Seq(V, V, functools.partial(MultiHeadAttention, num_heads=4), SinusoidalPositionalEncoding, d_model=128, d_ff=512).eval()
    rnn = RNNSeq2Seq(V, V, AdditiveAttention, NoPositionalEncoding, d_model=128).eval()
    src = torch.randint(4, V, (B, SRC_LEN))

    def greedy(model, incremental: bool = True):
        if hasattr(model, "incremental"):
            model.incremental = incremental
        with torch.no_grad():
            out, _ = greedy_decode(model, src, 2, NEVER, STEPS)
        assert out.shape == (B, STEPS)

    def beam(model):
        if hasattr(model, "incremental"):
            model.incremental = True
        with torch.no_grad():
            beam_search(model, src, 2, NEVER, STEPS, beam_size=5, alpha=0.6)

    variants = {
        "transformer cached": functools.partial(greedy, transformer, True),
        "transformer recomputed": functools.partial(greedy, transformer, False),
        "transformer beam 5": functools.partial(beam, transformer),
        "rnn greedy": functools.partial(greedy, rnn),
        "rnn beam 5": functools.partial(beam, rnn),
    }
    for fn in variants.values():
        fn()  # warm-up
    per = rotate(variants, args.rounds, seconds)
    tokens = B * STEPS
    report = {
        **environment(args.rounds),
        "output_tokens_per_s": {name: tokens / statistics.median(t) for name, t in per.items()},
        "cache_speedup": ratio_summary(per["transformer recomputed"], per["transformer cached"]),
        "beam_over_greedy_time": {
            "transformer": ratio_summary(per["transformer beam 5"], per["transformer cached"]),
            "rnn": ratio_summary(per["rnn beam 5"], per["rnn greedy"]),
        },
    }
    rate = report["output_tokens_per_s"]
    rows = [
        ["transformer greedy, key/value cache", f"{rate['transformer cached']:,.0f} tok/s"],
        ["transformer greedy, prefix recomputed", f"{rate['transformer recomputed']:,.0f} tok/s"],
        ["cache speed-up (recomputed / cached time)", spread(report["cache_speedup"])],
        ["transformer beam 5 / greedy time", spread(report["beam_over_greedy_time"]["transformer"])],
        ["RNN greedy", f"{rate['rnn greedy']:,.0f} tok/s"],
        ["RNN beam 5 / greedy time", spread(report["beam_over_greedy_time"]["rnn"])],
    ]
    publish("decoding", f"Decoding: batch {B}, {STEPS} output tokens, d 128", rows, report)


if __name__ == "__main__":
    main()

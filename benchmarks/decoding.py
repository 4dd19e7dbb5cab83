"""Decoding speed, side by side in one run (interleaved), as ratios.

1. greedy decoding of 64 tokens, batch 32, default transformer: key/value cache vs recomputing
   the prefix at every step;
2. beam search (beam 5) vs greedy, both cached: output tokens per second.

    python benchmarks/decoding.py [--repeats N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from attnlab.attention import MultiHeadAttention
from attnlab.decoding import beam_search, greedy_decode
from attnlab.models import TransformerSeq2Seq
from attnlab.positional import SinusoidalPositionalEncoding

B, SRC_LEN, STEPS, V = 32, 20, 64, 200
NEVER = -1  # an EOS id no step produces: every sentence runs the full 64 steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = TransformerSeq2Seq(V, V, functools.partial(MultiHeadAttention, num_heads=4), SinusoidalPositionalEncoding, d_model=128, d_ff=512).eval()
    src = torch.randint(4, V, (B, SRC_LEN))

    def greedy(incremental: bool):
        model.incremental = incremental
        out, _ = greedy_decode(model, src, 2, NEVER, STEPS)
        assert out.shape == (B, STEPS)

    def beam():
        model.incremental = True
        beam_search(model, src, 2, NEVER, STEPS, beam_size=5, alpha=0.6)

    runs = {"cached": functools.partial(greedy, True), "uncached": functools.partial(greedy, False), "beam5": beam}
    for fn in runs.values():
        fn()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = B * STEPS
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformer d=128, 3+3 layers; batch {B}, {STEPS} output tokens")
    print(f"greedy: cached {tokens / med['cached']:,.0f} tok/s, uncached {tokens / med['uncached']:,.0f} tok/s, "
          f"cached speed-up = {med['uncached'] / med['cached']:.2f}x")
    print(f"beam 5: {tokens / med['beam5']:,.0f} output tok/s vs greedy {tokens / med['cached']:,.0f}: "
          f"beam/greedy time = {med['beam5'] / med['cached']:.2f}x")


if __name__ == "__main__":
    main()

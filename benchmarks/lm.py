"""Sampling from the character-level GPT of experiment=shakespeare_char (4 layers, width 128),
256 new tokens, greedy so both paths produce the same tokens: the key/value cache vs recomputing
the whole sequence each step. Side by side, the order rotating every round; the ratio is the
median of per-round ratios with its min-max spread. Positions: sinusoidal (the cache serves all
256 tokens) and learned with the experiment's 64-token table (past 64 tokens the window slides
and both paths recompute: the cache pays only for the first 64).

Writes benchmarks/results/lm_sampling.json.

    python benchmarks/lm.py [--rounds N]
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch
from harness import environment, publish, ratio_summary, rotate, seconds, spread

from attnlab.attention import MultiHeadAttention
from attnlab.decoding import generate
from attnlab.models.transformer import TransformerSeq2Seq
from attnlab.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding

NEW_TOKENS, VOCAB = 256, 85


def model(pos):
    torch.manual_seed(0)
    return TransformerSeq2Seq.decoder_only(
        VOCAB, functools.partial(MultiHeadAttention, num_heads=4), pos, d_model=128, num_decoder_layers=4, d_ff=512,
        dropout=0.0, norm="pre", activation="gelu", embed_scale=False,
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prompt = torch.randint(4, VOCAB, (1, 8))
    report = {**environment(args.rounds), "new_tokens": NEW_TOKENS}
    for name, pos in (("sinusoidal", SinusoidalPositionalEncoding), ("learned_64", functools.partial(LearnedPositionalEncoding, max_len=64))):
        lm = model(pos)
        outputs = {cache: generate(lm, prompt, NEW_TOKENS, temperature=0.0, use_cache=cache) for cache in (True, False)}
        assert torch.equal(outputs[True], outputs[False])  # the same tokens either way
        per = rotate({"cached": True, "recomputed": False}, args.rounds, lambda cache: seconds(lambda: generate(lm, prompt, NEW_TOKENS, temperature=0.0, use_cache=cache)))
        report[name] = {
            "cached_tokens_per_s": NEW_TOKENS / statistics.median(per["cached"]),
            "uncached_tokens_per_s": NEW_TOKENS / statistics.median(per["recomputed"]),
            "speedup": ratio_summary(per["recomputed"], per["cached"]),
        }
    rows = [
        [f"{name}: cached / recomputed tokens/s", f"{s['cached_tokens_per_s']:,.0f} / {s['uncached_tokens_per_s']:,.0f}; cache {spread(s['speedup'])}, same tokens"]
        for name, s in ((n, report[n]) for n in ("sinusoidal", "learned_64"))
    ]
    publish("lm_sampling", f"Greedy sampling of {NEW_TOKENS} new tokens, with and without the key/value cache", rows, report)


if __name__ == "__main__":
    main()

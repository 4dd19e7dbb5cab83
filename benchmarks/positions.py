"""What each way of telling a transformer where its tokens are costs, side by side in one run (the
order rotating every round; ratios are medians of per-round ratios with their min-max spread):

1. a training step (forward, loss, backward, AdamW) of the d=256 transformer with every pos_enc,
   relative to sinusoidal, on two shapes: the translation model on numbers-sized batches (64
   sentences of ~20 tokens) and the decoder-only LM on 12 blocks of 256 tokens; each with the
   fused attention kernel PyTorch picks and with the plain math kernel forced, so the cost of a
   float score bias (ALiBi, T5) inside the fused path shows;
2. greedy decoding with the key/value cache (batch 32, 64 tokens) for every pos_enc;
3. grouped-query attention in the LM (4 query heads; 4, 2 or 1 key/value heads): the cache's
   memory after 264 positions and cached sampling speed, relative to 4 kv heads.

Writes benchmarks/results/positions.json.

    python benchmarks/positions.py [--rounds N] [--steps N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch
import torch.nn.functional as F
from harness import environment, publish, ratio_summary, rotate, seconds, spread
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnlab.decoding import generate, greedy_decode
from attnlab.models.factory import build_language_model, build_seq2seq

POSITIONS = ("sinusoidal", "none", "learned", "rotary", "alibi", "t5")
KERNELS = ("fused", "math")
V, PAD, BOS, NEVER = 200, 0, 2, -1
ARCH = {"_component_": "arch/transformer", "d_model": 256, "d_ff": 1024, "num_encoder_layers": 3, "num_decoder_layers": 3, "dropout": 0.1}


def attention(num_kv_heads: int | None = None) -> dict:
    spec = {"_component_": "attention/multihead", "num_heads": 4, "dropout": 0.1}
    return spec if num_kv_heads is None else {**spec, "num_kv_heads": num_kv_heads}


def position(name: str) -> dict:
    spec = {"_component_": f"pos_enc/{name}"}
    return {**spec, "num_heads": 4} if name == "t5" else spec  # ALiBi takes its head count from the attention


def translation_model(pos: str):
    torch.manual_seed(0)
    return build_seq2seq(ARCH, attention(), position(pos), V, V, PAD)


def language_model(pos: str, num_kv_heads: int | None = None):
    torch.manual_seed(0)
    return build_language_model(ARCH, attention(num_kv_heads), position(pos), V, PAD)


def translation_step(model, optimizer, src, tgt):
    logits, _ = model(src, tgt[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1))


def lm_step(model, optimizer, tokens):
    logits, _ = model(tokens[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))


def train_time(model, loss_fn, inputs, steps: int, kernel: str) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()

    def step():
        with sdpa_kernel([SDPBackend.MATH]) if kernel == "math" else contextlib.nullcontext():
            loss = loss_fn(model, optimizer, *inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return seconds(step, steps)


def cache_bytes(model, length: int) -> int:
    """Bytes of the key/value cache after ``length`` positions."""
    with torch.no_grad():
        _, state = model.step(torch.randint(4, V, (1, length)), model.start(1))
    return sum(cache.nbytes for cache in state.self_attn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps per measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    report = {**environment(args.rounds), "model": "transformer d 256, 4 heads, d_ff 1024, 3 layers per stack"}
    src, tgt = torch.randint(4, V, (64, 20)), torch.randint(4, V, (64, 22))
    blocks = torch.randint(4, V, (12, 257))

    # 1. training steps: every pos_enc x kernel, on both shapes
    for shape, build, loss_fn, inputs in (
        ("translation_64x20", translation_model, translation_step, (src, tgt)),
        ("lm_12x256", language_model, lm_step, (blocks,)),
    ):
        models = {pos: build(pos) for pos in POSITIONS}
        variants = {f"{pos}/{kernel}": (pos, kernel) for pos in POSITIONS for kernel in KERNELS}
        per = rotate(variants, args.rounds, lambda v: train_time(models[v[0]], loss_fn, inputs, args.steps, v[1]))
        base = per["sinusoidal/fused"]
        report[shape] = {
            pos: {
                "step_ms": 1000 * statistics.median(per[f"{pos}/fused"]),
                "time_vs_sinusoidal": ratio_summary(per[f"{pos}/fused"], base),
                "math_kernel_vs_fused": ratio_summary(per[f"{pos}/math"], per[f"{pos}/fused"]),
            }
            for pos in POSITIONS
        }

    # 2. cached greedy decoding, every pos_enc
    decoders = {pos: translation_model(pos).eval() for pos in POSITIONS}

    def decode(model):
        with torch.no_grad():
            greedy_decode(model, src[:32], BOS, NEVER, 64)

    per = rotate(decoders, args.rounds, lambda m: seconds(lambda: decode(m)))
    report["cached_decoding_32x64"] = {
        pos: {"tokens_per_s": 32 * 64 / statistics.median(per[pos]), "time_vs_sinusoidal": ratio_summary(per[pos], per["sinusoidal"])} for pos in POSITIONS
    }

    # 3. grouped-query attention: cache memory and cached sampling
    lms = {kv: language_model("rotary", kv).eval() for kv in (4, 2, 1)}
    prompt = torch.randint(4, V, (8, 8))
    per = rotate(lms, args.rounds, lambda m: seconds(lambda: generate(m, prompt, 128, temperature=0.0)))
    full = cache_bytes(lms[4], 264)
    report["gqa_lm_rotary"] = {
        f"kv_heads_{kv}": {
            "cache_bytes_264_positions": cache_bytes(lms[kv], 264),
            "cache_vs_4_heads": cache_bytes(lms[kv], 264) / full,
            "sampling_tokens_per_s": 8 * 128 / statistics.median(per[kv]),
            "sampling_time_vs_4_heads": ratio_summary(per[kv], per[4]),
        }
        for kv in (4, 2, 1)
    }

    rows = []
    for shape in ("translation_64x20", "lm_12x256"):
        for pos, r in report[shape].items():
            rows.append([f"train step {shape}, {pos}", f"{r['step_ms']:.1f} ms, vs sinusoidal {spread(r['time_vs_sinusoidal'])}; math kernel / fused {spread(r['math_kernel_vs_fused'])}"])
    for pos, r in report["cached_decoding_32x64"].items():
        rows.append([f"cached greedy decoding 32 x 64, {pos}", f"{r['tokens_per_s']:,.0f} tok/s, time vs sinusoidal {spread(r['time_vs_sinusoidal'])}"])
    for name, r in report["gqa_lm_rotary"].items():
        rows.append([f"GQA LM (rotary, 4 query heads), {name}", f"cache at 264 positions {r['cache_bytes_264_positions'] / 2**20:.2f} MiB (×{r['cache_vs_4_heads']:.2f}); "
                     f"sampling 8 x 128 {r['sampling_tokens_per_s']:,.0f} tok/s, time vs 4 kv heads {spread(r['sampling_time_vs_4_heads'])}"])
    publish("positions", f"Every pos_enc: training step, cached decoding, grouped-query cache ({report['model']})", rows, report)

if __name__ == "__main__":
    main()

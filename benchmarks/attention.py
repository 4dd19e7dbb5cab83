"""Component benchmarks, each measured side by side in one run and reported as a ratio.

1. multihead attention forward+backward: fused SDPA path vs explicit math path
   (batch 32, 4 heads, head dim 64; sequence 128 and 512);
2. additive attention peak memory (forward+backward, T = S = 256): chunked vs whole;
3. RNN training step: whole-sequence teacher forcing (luong, no input feeding) vs the
   step-by-step decoder on the same weights.

Timed variants rotate their order every round; ratios are medians of per-round ratios (min-max).
Writes benchmarks/results/attention.json.

    python benchmarks/attention.py [--rounds N]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import statistics

import torch
from harness import environment, publish, ratio_summary, rotate, seconds, spread

from attnlab.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention, causal_mask
from attnlab.models import RNNSeq2Seq
from attnlab.positional import NoPositionalEncoding


def timed(fns: dict, rounds: int, warmup: int = 2) -> dict:
    """Seconds per call of each function, one call each per round in rotated order."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    return rotate(fns, rounds, seconds)


def bench_multihead(seq: int, rounds: int) -> list:
    torch.manual_seed(0)
    attn = MultiHeadAttention(256, num_heads=4)
    x = torch.randn(32, seq, 256, requires_grad=True)

    def run(need_weights: bool):
        out, _ = attn(x, x, x, need_weights=need_weights)
        out.sum().backward()

    t = timed({"fused": functools.partial(run, False), "math": functools.partial(run, True)}, rounds)
    ratio = ratio_summary(t["math"], t["fused"])
    row = [f"multihead fwd+bwd, B=32 H=4 dh=64 T={seq}: math / fused", f"{spread(ratio)} ({statistics.median(t['math']) * 1e3:.1f} vs {statistics.median(t['fused']) * 1e3:.1f} ms)"]
    return row, {"fused_ms": 1000 * statistics.median(t["fused"]), "math_ms": 1000 * statistics.median(t["math"]), "math_vs_fused": ratio}


def _peak_rss_mib() -> float:
    # VmHWM belongs to this process image (ru_maxrss would carry the parent's peak across exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _additive_peak(max_chunk_elements, queue) -> None:
    torch.manual_seed(0)
    attn = AdditiveAttention(128, max_chunk_elements=max_chunk_elements)
    attn.cache_elements = 2**40  # isolate the memory budget from the cache-sized chunking
    x = torch.randn(8, 256, 128, requires_grad=True)
    mask = causal_mask(256)
    base = _peak_rss_mib()
    out, _ = attn(x, x, x, attn_mask=mask)
    out.sum().backward()
    queue.put(_peak_rss_mib() - base)


def bench_additive_memory() -> tuple:
    ctx = mp.get_context("spawn")  # a fresh process each: the peak is per process
    # a fixed mmap threshold: otherwise glibc keeps freed chunk buffers on its heap and the
    # peak measures the allocator's caching rather than what the algorithm holds at once
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    peaks = {}
    for name, limit in (("whole", None), ("chunked", 2**22)):
        queue = ctx.Queue()
        proc = ctx.Process(target=_additive_peak, args=(limit, queue))
        proc.start()
        peaks[name] = queue.get()
        proc.join()
    full = 8 * 256 * 256 * 128 * 4 / 2**20
    row = [f"additive fwd+bwd peak RSS growth, B=8 T=S=256 d_attn=128 (whole tanh tensor {full:.0f} MiB)",
           f"whole {peaks['whole']:.0f} MiB, chunked (2^22 elements) {peaks['chunked']:.0f} MiB: ×{peaks['whole'] / max(peaks['chunked'], 1):.1f} less"]
    return row, {"peak_mib": peaks}


def bench_rnn(cell: str, attention: str, rounds: int, device: str = "cpu") -> tuple:
    """A full training step (encoder, decoder, loss, backward, AdamW), and the decoder alone."""
    torch.manual_seed(0)
    factory = AdditiveAttention if attention == "additive" else functools.partial(DotProductAttention, score=attention)
    model = RNNSeq2Seq(200, 200, factory, NoPositionalEncoding, d_model=256, emb_dim=128, cell=cell, decoder="luong", input_feeding=False, dropout=0.1)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    src = torch.randint(4, 200, (64, 20), device=device)
    tgt = torch.randint(4, 200, (64, 26), device=device)
    with torch.no_grad():
        fixed = model.encode(src)

    def step(stepwise: bool, decoder_only: bool):
        encoded = fixed if decoder_only else model.encode(src)
        decoder = model.decoder.forward_stepwise if stepwise else model.decoder
        hidden, _ = decoder(tgt[:, :-1], model.start(encoded), encoded.padding_mask)
        loss = torch.nn.functional.cross_entropy(model._logits(hidden).reshape(-1, 200), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()  # the time of the work, not of its launch

    t = timed(
        {
            "fast": functools.partial(step, False, False),
            "stepwise": functools.partial(step, True, False),
            "fast_dec": functools.partial(step, False, True),
            "stepwise_dec": functools.partial(step, True, True),
        },
        rounds,
    )
    tokens = 64 * (20 + 25)
    step_ratio, dec_ratio = ratio_summary(t["stepwise"], t["fast"]), ratio_summary(t["stepwise_dec"], t["fast_dec"])
    row = [f"RNN train step ({cell.upper()} 256, {attention}, B=64 S=20 T=25): step-by-step / whole-sequence",
           f"{spread(step_ratio)} ({tokens / statistics.median(t['fast']):,.0f} vs {tokens / statistics.median(t['stepwise']):,.0f} tok/s); decoder alone {spread(dec_ratio)}"]
    return row, {"whole_sequence_tokens_per_s": tokens / statistics.median(t["fast"]), "speedup": step_ratio, "decoder_speedup": dec_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rows, report = [], environment(args.rounds)
    row, report["additive_memory"] = bench_additive_memory()
    rows.append(row)
    for seq in (128, 512):
        row, report[f"multihead_T{seq}"] = bench_multihead(seq, args.rounds)
        rows.append(row)
    for cell in ("gru", "lstm"):
        for attention in ("additive", "general"):
            row, report[f"rnn_{cell}_{attention}"] = bench_rnn(cell, attention, args.rounds)
            rows.append(row)
    publish("attention", "Attention components: fused vs math kernel, additive memory, the RNN's whole-sequence path", rows, report)

if __name__ == "__main__":
    main()

"""Component benchmarks, each measured side by side in one run and reported as a ratio.

1. multihead attention forward+backward: fused SDPA path vs explicit math path
   (batch 32, 4 heads, head dim 64; sequence 128 and 512);
2. additive attention peak memory (forward+backward, T = S = 256): chunked vs whole;
3. RNN training step: whole-sequence teacher forcing (luong, no input feeding) vs the
   step-by-step decoder on the same weights.

    python benchmarks/attention.py [--repeats N]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import statistics
import time

import torch

from attnlab.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention, causal_mask
from attnlab.models import RNNSeq2Seq
from attnlab.positional import NoPositionalEncoding


def interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds per call of each function, calls interleaved so noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_multihead(seq: int, repeats: int) -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(256, num_heads=4)
    x = torch.randn(32, seq, 256, requires_grad=True)

    def run(need_weights: bool):
        out, _ = attn(x, x, x, need_weights=need_weights)
        out.sum().backward()

    t = interleaved({"fused": functools.partial(run, False), "math": functools.partial(run, True)}, repeats)
    print(f"multihead fwd+bwd, B=32 H=4 dh=64 T={seq}: fused {t['fused'] * 1e3:7.1f} ms, math {t['math'] * 1e3:7.1f} ms, "
          f"math/fused = {t['math'] / t['fused']:.2f}x")


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


def bench_additive_memory() -> None:
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
    print(f"additive fwd+bwd, B=8 T=S=256 d_attn=128 (full tanh tensor {full:.0f} MiB): peak RSS growth "
          f"whole {peaks['whole']:.0f} MiB, chunked (2^22 elements) {peaks['chunked']:.0f} MiB, "
          f"whole/chunked = {peaks['whole'] / max(peaks['chunked'], 1):.1f}x")


def bench_rnn(cell: str, attention: str, repeats: int) -> None:
    """A full training step (encoder, decoder, loss, backward, AdamW), and the decoder alone."""
    torch.manual_seed(0)
    factory = AdditiveAttention if attention == "additive" else functools.partial(DotProductAttention, score=attention)
    model = RNNSeq2Seq(200, 200, factory, NoPositionalEncoding, d_model=256, emb_dim=128, cell=cell, decoder="luong", input_feeding=False, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    src = torch.randint(4, 200, (64, 20))
    tgt = torch.randint(4, 200, (64, 26))
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

    t = interleaved(
        {
            "fast": functools.partial(step, False, False),
            "stepwise": functools.partial(step, True, False),
            "fast_dec": functools.partial(step, False, True),
            "stepwise_dec": functools.partial(step, True, True),
        },
        repeats,
    )
    tokens = 64 * (20 + 25)
    print(f"RNN train step ({cell.upper()} 256, {attention}, B=64 S=20 T=25): whole-sequence {tokens / t['fast']:,.0f} tok/s, "
          f"step-by-step {tokens / t['stepwise']:,.0f} tok/s, speed-up = {t['stepwise'] / t['fast']:.2f}x "
          f"(decoder alone: {t['stepwise_dec'] * 1e3:.0f} vs {t['fast_dec'] * 1e3:.0f} ms, {t['stepwise_dec'] / t['fast_dec']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_additive_memory()
    for seq in (128, 512):
        bench_multihead(seq, args.repeats)
    for cell in ("gru", "lstm"):
        for attention in ("additive", "general"):
            bench_rnn(cell, attention, args.repeats)


if __name__ == "__main__":
    main()

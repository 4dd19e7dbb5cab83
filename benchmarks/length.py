"""What attention costs as sequences grow, for every mechanism, side by side in one run (the
order rotating each round; times are medians over rounds, with the min-max spread of the ratio
to fused multi-head attention in the same round):

1. one causal self-attention layer, forward and backward, d=256, 4 heads, batch × length fixed
   at --tokens tokens: seconds, peak memory above the inputs (the process's peak resident set,
   reset before each call), and the log-log slope of time and memory between lengths (2:
   quadratic, 1: linear);
2. a whole decoder-only LM training step (forward, loss, backward, AdamW; d=256, 2 layers) at
   the same shapes;
3. decoding: seconds per new token (batch 1, one token a step, the model's cache) and the
   cache's bytes at contexts of 1k to 16k positions.

Mechanisms: multihead through PyTorch's fused kernel (the baseline) and through the explicit
math that forms the score matrix ("multihead-explicit", skipped where its scores alone would
pass --explicit-gib), local (window 256), linear (elu; favor with 64 features), mla (latent d/4),
differential; decoding adds grouped-query (1 key/value head).

Slopes are per sequence: the cost of one sequence against its length (the measured time times
length / tokens), 2 for quadratic, 1 for linear.

Writes benchmarks/results/length.json, docs/length/length.png and docs/length/benchmark.md;
--render-only recomputes the table, the figure and the page from that JSON.

    python benchmarks/length.py [--rounds N] [--lengths 256 1024 ...] [--contexts 1024 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import math
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from harness import RESULTS, command_line, environment, publish, rotate
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnlab import components
from attnlab.models.factory import build_language_model

ROOT = Path(__file__).resolve().parents[1]
D, HEADS, V, PAD, WINDOW = 256, 4, 256, 0, 256
MECHANISMS: Dict[str, dict] = {
    "multihead": {"_component_": "attention/multihead", "num_heads": HEADS, "dropout": 0.0},
    "multihead-explicit": {"_component_": "attention/multihead", "num_heads": HEADS, "dropout": 0.0},
    "local": {"_component_": "attention/local", "num_heads": HEADS, "window": WINDOW, "dropout": 0.0},
    "linear": {"_component_": "attention/linear", "num_heads": HEADS},
    "linear-favor": {"_component_": "attention/linear", "num_heads": HEADS, "feature_map": "favor", "num_features": 64},
    "mla": {"_component_": "attention/mla", "num_heads": HEADS, "dropout": 0.0},
    "differential": {"_component_": "attention/differential", "num_heads": HEADS, "dropout": 0.0},
}
DECODING = {
    "multihead": MECHANISMS["multihead"],
    "gqa-1kv": {**MECHANISMS["multihead"], "num_kv_heads": 1},
    "mla": MECHANISMS["mla"],
    "local": MECHANISMS["local"],
    "linear": MECHANISMS["linear"],
}
ARCH = {"_component_": "arch/transformer", "d_model": D, "d_ff": 4 * D, "num_decoder_layers": 2, "dropout": 0.0, "norm": "pre"}
POS = {"_component_": "pos_enc/rotary"}


def _status(field: str) -> int:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1]) * 1024


def exact_memory() -> None:
    """Every block above 64 KiB straight from mmap and back to the kernel when freed, so that the
    resident set follows the live tensors (glibc otherwise keeps freed blocks for reuse, and a
    measurement would read what an earlier one left, or nothing)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD, fixed: no dynamic raising
    libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak resident memory while fn runs, above what was resident before it (Linux: the peak is
    reset through /proc/self/clear_refs; exact_memory() makes it follow the tensors)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS:")
    fn()
    return max(0, _status("VmHWM:") - before)


def kernel(name: str):
    return sdpa_kernel(SDPBackend.MATH) if name == "multihead-explicit" else contextlib.nullcontext()


def layer(name: str):
    torch.manual_seed(0)
    factory = components.build(MECHANISMS[name], "attention", kind="attention")
    hook = components.build(POS, "pos_enc", kind="pos_enc")(d_model=D).attention_hook(causal=True)
    return factory(d_model=D, position_hook=hook)


def lm(spec: dict):
    torch.manual_seed(0)
    return build_language_model(ARCH, spec, POS, V, PAD)


def slope(xs: List[int], ys: List[Optional[float]], tokens: int) -> Optional[float]:
    """Log-log slope of the cost of one sequence against its length, between the last two measured
    points (the long end): 2 for quadratic, 1 for linear. A measurement holds batch × length fixed
    at ``tokens``, so one sequence costs y / (tokens / length)."""
    points = [(x, y * x / tokens) for x, y in zip(xs, ys) if y]
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points[-2], points[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def crossover(lengths: List[int], mine: List[Optional[float]], base: List[Optional[float]]) -> Optional[int]:
    """The first length from which this mechanism is faster than the baseline at every length."""
    for i, length in enumerate(lengths):
        if all(m is not None and b is not None and m < b for m, b in zip(mine[i:], base[i:])):
            return length
    return None


def memory_pass(names: List[str], lengths: List[int], tokens: int, explicit_gib: float, make_step) -> Dict[str, List[Optional[int]]]:
    """Peak memory of one call per mechanism and length, nothing else running in the process."""
    out: Dict[str, List[Optional[int]]] = {n: [] for n in names}
    for length in lengths:
        batch = max(1, tokens // length)
        for n in names:
            if n == "multihead-explicit" and batch * HEADS * length * length * 4 / 2**30 > explicit_gib:
                out[n].append(None)
                continue
            step = make_step(n, length, batch)
            step()  # warm-up: tables, lazily made buffers
            out[n].append(peak_bytes(step))
            del step
        print(f"  memory {length}: " + ", ".join(f"{n} {(b or 0) / 2**20:.0f} MiB" for n, b in ((n, out[n][-1]) for n in names)), flush=True)
    return out


def scaling(kind: str, names: List[str], lengths: List[int], tokens: int, rounds: int, explicit_gib: float, make_step) -> Dict[str, dict]:
    """Time of make_step(name, length)() for every mechanism and length (memory: memory_pass,
    apart, as it needs another malloc setting that would slow every call)."""
    out: Dict[str, dict] = {n: {"seconds": [], "peak_bytes": [None] * len(lengths), "spread_vs_multihead": []} for n in names}
    for length in lengths:
        batch = max(1, tokens // length)
        scores_gib = batch * HEADS * length * length * 4 / 2**30
        runnable = [n for n in names if not (n == "multihead-explicit" and scores_gib > explicit_gib)]
        steps = {n: make_step(n, length, batch) for n in runnable}
        for fn in steps.values():
            fn()  # warm-up: allocator, tables
        times = rotate(steps, rounds, lambda fn: _seconds(fn))
        for n in names:
            if n not in steps:
                out[n]["seconds"].append(None)
                out[n]["spread_vs_multihead"].append(None)
                continue
            ratios = [a / b for a, b in zip(times[n], times["multihead"])]
            out[n]["seconds"].append(statistics.median(times[n]))
            out[n]["spread_vs_multihead"].append([min(ratios), max(ratios)])
        print(f"  {kind} {length}: " + ", ".join(f"{n} {statistics.median(times[n]):.3f}s" for n in steps), flush=True)
        del steps
    return out


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def attention_step(name: str, length: int, batch: int):
    attn = layer(name)
    x = torch.randn(batch, length, D, requires_grad=True)

    def run():
        with kernel(name):
            out, _ = attn(x, x, x, causal=True)
            out.sum().backward()
        x.grad = None
        attn.zero_grad(set_to_none=True)

    return run


def lm_step(name: str, length: int, batch: int):
    model = lm(MECHANISMS[name])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(1, V, (batch, length + 1))

    def run():
        with kernel(name):
            logits, _ = model(tokens[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def decoding(contexts: List[int], rounds: int, new_tokens: int) -> Dict[str, dict]:
    """Seconds per new token and cache bytes after each context length."""
    out: Dict[str, dict] = {n: {"seconds_per_token": [], "cache_bytes": []} for n in DECODING}
    models = {n: lm(spec).eval() for n, spec in DECODING.items()}
    for context in contexts:
        states = {}
        with torch.no_grad():
            for n, model in models.items():
                state = model.start(1)
                for start in range(0, context, 1024):  # the prompt in chunks: a bounded prefill
                    _, state = model.step(torch.randint(1, V, (1, min(1024, context - start))), state)
                states[n] = state

        def per_token(n: str) -> float:
            model, state = models[n], states[n]
            token = torch.randint(1, V, (1, 1))
            with torch.no_grad():
                start = time.perf_counter()
                for _ in range(new_tokens):  # each step from the same context: the cost at this length
                    model.step(token, state)
                return (time.perf_counter() - start) / new_tokens

        for n in models:
            per_token(n)  # warm-up at this context: the first steps allocate
        times = rotate({n: n for n in models}, rounds, per_token)
        for n in models:
            out[n]["seconds_per_token"].append(statistics.median(times[n]))
            out[n]["cache_bytes"].append(sum(c.nbytes for c in states[n].self_attn))
        print(f"  decoding {context}: " + ", ".join(f"{n} {1000 * statistics.median(times[n]):.1f} ms" for n in models), flush=True)
    return out


def figure(lengths, layer_results, lm_results, contexts, decode_results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for ax, (results, key, title) in zip(
        axes,
        ((layer_results, "seconds", "attention layer fwd+bwd (s)"), (layer_results, "peak_bytes", "attention layer peak memory (bytes)"), (lm_results, "seconds", "LM train step (s)")),
    ):
        for n, r in results.items():
            xs = [x for x, y in zip(lengths, r[key]) if y]
            ax.plot(xs, [y for y in r[key] if y], marker="o", label=n)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (batch × length fixed)")
        ax.set_title(title)
    ax = axes[3]
    for n, r in decode_results.items():
        ax.plot(contexts, [1000 * s for s in r["seconds_per_token"]], marker="o", label=n)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context (positions)")
    ax.set_title("decoding: ms per new token")
    axes[0].legend(fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def render(lengths: List[int], contexts: List[int], tokens: int, layer_results: dict, lm_results: dict, decode_results: dict) -> List[List[str]]:
    """The table's rows from the measurements (also what --render-only recomputes from the JSON)."""

    def fmt_s(x):
        return "-" if x is None else f"{x:.3f} s"

    def fmt_b(x):
        return "-" if x is None else f"{x / 2**20:.0f} MiB"

    rows = []
    for kind, results in (("layer", layer_results), ("LM step", lm_results)):
        base = results["multihead"]["seconds"]
        for n, r in results.items():
            cross = crossover(lengths, r["seconds"], base) if n != "multihead" else None
            r["slope_time"], r["slope_memory"], r["crossover_vs_multihead"] = slope(lengths, r["seconds"], tokens), slope(lengths, r["peak_bytes"], tokens), cross
            points = [(L, s) for L, s in zip(lengths, r["seconds"]) if s]
            growth = points[-1][1] / points[-2][1] if len(points) >= 2 else None
            cells = " · ".join(f"{L}: {fmt_s(s)} / {fmt_b(m)}" for L, s, m in zip(lengths, r["seconds"], r["peak_bytes"]))
            slope_t = "-" if r["slope_time"] is None else f"{r['slope_time']:.2f}"
            slope_m = "-" if r["slope_memory"] is None else f"{r['slope_memory']:.2f}"
            where = "" if n == "multihead" else f"; faster than fused multihead from {cross if cross else 'no length measured'}"
            grew = "" if growth is None else f"; ×{growth:.2f} at fixed tokens from {points[-2][0]} to {points[-1][0]}"
            rows.append([f"{kind} {n} (time / peak memory)", f"{cells}; per-sequence slope {slope_t} (time), {slope_m} (memory){grew}{where}"])
    for n, r in decode_results.items():
        cells = " · ".join(f"{c}: {1000 * s:.1f} ms, {b / 2**20:.2f} MiB" for c, s, b in zip(contexts, r["seconds_per_token"], r["cache_bytes"]))
        growth = r["seconds_per_token"][-1] / r["seconds_per_token"][0]
        cache_growth = r["cache_bytes"][-1] / r["cache_bytes"][0]
        rows.append([f"decoding {n} (per new token, cache)", f"{cells}; from {contexts[0]} to {contexts[-1]}: time ×{growth:.2f}, cache ×{cache_growth:.2f}"])
    mla_ratio = decode_results["mla"]["cache_bytes"][-1] / decode_results["multihead"]["cache_bytes"][-1]
    rows.append(["MLA cache / multihead cache (equal heads and width)", f"{mla_ratio:.3f}"])
    return rows


def markdown(saved: dict) -> str:
    """docs/length/benchmark.md: the tables of results/length.json, one row a mechanism."""
    shapes, env = saved["shapes"], saved.get("environment") or {}
    lengths, contexts, tokens = shapes["lengths"], shapes["contexts"], shapes["tokens"]
    out = [
        "# Attention at length: the benchmark",
        "",
        f"Generated by `python benchmarks/length.py --render-only` from `benchmarks/results/length.json`, measured by "
        f"`{saved.get('command', 'python benchmarks/length.py')}` — torch {env.get('torch', '?')}, {env.get('threads', '?')} threads, "
        f"CPU flags {' '.join(env.get('cpu_flags') or []) or '-'}, {env.get('rounds', '?')} rounds, {env.get('order', '')}. "
        f"Width {shapes['d_model']}, {shapes['heads']} heads, pos_enc={shapes['pos_enc']}, local window {shapes['window']}; "
        f"every training shape holds batch × length = {tokens:,} tokens. Slope: log-log, of one sequence's cost against its "
        "length between the two longest lengths (2: quadratic, 1: linear). Crossover: the first length from which the "
        "mechanism is faster than fused multi-head attention at every longer length measured.",
        "",
        "Peak memory: measured after all timing, one call a mechanism and length, with every freed block given back to the "
        "kernel (so the process's peak resident set follows the live tensors), above what was resident before the call"
        + ("" if saved.get("memory_command", saved.get("command", "")).find("--memory-lm") >= 0 else "; the LM step's only with --memory-lm (–: not measured)") + ".",
        *([f"The attention layer re-measured by `{saved['layer_command']}`."] if saved.get("layer_command") else []),
        *([f"Peak memory measured by `{saved['memory_command']}`."] if saved.get("memory_command") else []),
        *([f"Decoding re-measured by `{saved['decoding_command']}`."] if saved.get("decoding_command") else []),
        "",
        "![time, memory, decoding](length.png)",
        "",
    ]
    for key, title in (("layer", "One causal self-attention layer, forward + backward"), ("lm_step", f"A decoder-only LM training step ({shapes['lm_layers']} layers, AdamW)")):
        out += [f"## {title}", "", "| mechanism | " + " | ".join(f"{L:,}: s / MiB" for L in lengths) + " | slope time | slope memory | crossover |", "|---|" + "---|" * (len(lengths) + 3)]
        for name, r in saved[key].items():
            cells = ["–" if t is None else f"{t:.3f} / " + ("–" if m is None else f"{m / 2**20:,.0f}") for t, m in zip(r["seconds"], r["peak_bytes"])]
            slope_t = "–" if r.get("slope_time") is None else f"{r['slope_time']:.2f}"
            slope_m = "–" if r.get("slope_memory") is None else f"{r['slope_memory']:.2f}"
            cross = "baseline" if name == "multihead" else (f"{r['crossover_vs_multihead']:,}" if r.get("crossover_vs_multihead") else "none measured")
            out.append(f"| {name} | " + " | ".join(cells) + f" | {slope_t} | {slope_m} | {cross} |")
        out.append("")
    out += ["## Decoding, batch 1: time per new token and cache size", "", "| mechanism | " + " | ".join(f"{c:,}: ms / cache MiB" for c in contexts) + " | time growth | cache growth |", "|---|" + "---|" * (len(contexts) + 2)]
    for name, r in saved["decoding"].items():
        cells = [f"{1000 * t:.1f} / {b / 2**20:.2f}" for t, b in zip(r["seconds_per_token"], r["cache_bytes"])]
        out.append(f"| {name} | " + " | ".join(cells) + f" | ×{r['seconds_per_token'][-1] / r['seconds_per_token'][0]:.2f} | ×{r['cache_bytes'][-1] / r['cache_bytes'][0]:.2f} |")
    mla = saved["decoding"]["mla"]["cache_bytes"][-1] / saved["decoding"]["multihead"]["cache_bytes"][-1]
    out += ["", f"MLA's cache is {mla:.3f} of multi-head's at equal heads and width (the latent of d/4 and a rotary key of d_head/2 a position, against 2·d).", ""]
    return "\n".join(out)


def write_markdown(saved: dict) -> None:
    path = ROOT / "docs" / "length" / "benchmark.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(saved))
    print(f"wrote {path}")


def memory_in_a_fresh_process(args) -> None:
    """Peak memory from a process of its own: the heap this one freed while timing would be
    reused and read as nothing. It adds the peaks to results/length.json and renders the page."""
    command = [sys.executable, sys.argv[0], "--part", "memory", "--explicit-gib", str(args.explicit_gib)] + (["--memory-lm"] if args.memory_lm else [])
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=16384, help="batch × length of every training shape")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--new-tokens", type=int, default=8, help="decoding steps timed per measurement")
    parser.add_argument("--explicit-gib", type=float, default=2.0, help="skip the explicit path where its score matrix alone passes this")
    parser.add_argument("--render-only", action="store_true", help="recompute the table and figure from results/length.json, measuring nothing")
    parser.add_argument("--part", choices=["all", "layer", "memory", "decoding"], default="all",
                        help="layer: only the attention layer (time, then memory); memory: only peak memory; decoding: only decoding; each replaces that part of results/length.json")
    parser.add_argument("--memory-lm", action="store_true", help="the LM step's peak memory too (slow), not only the layer's")
    args = parser.parse_args()

    def measure_memory(results: Dict[str, dict], lengths: List[int]) -> None:
        """Peaks for the layer (and the LM step with --memory-lm), after all timing: exact_memory
        slows every allocation, so no time is taken once it is on."""
        exact_memory()
        for key, make_step in (("layer", attention_step), ("lm_step", lm_step))[: 2 if args.memory_lm else 1]:
            for n, peaks in memory_pass(list(results[key]), lengths, args.tokens, args.explicit_gib, make_step).items():
                results[key][n]["peak_bytes"] = peaks

    if args.part != "all":
        saved = json.loads((RESULTS / "length.json").read_text())
        shapes = saved["shapes"]
        args.tokens = shapes["tokens"]
        if args.part == "layer":
            timed = scaling("layer", list(saved["layer"]), shapes["lengths"], shapes["tokens"], args.rounds, args.explicit_gib, attention_step)
            for n, r in timed.items():
                saved["layer"][n].update(seconds=r["seconds"], spread_vs_multihead=r["spread_vs_multihead"])
            saved["layer_command"] = command_line()
        if args.part == "memory":
            measure_memory(saved, shapes["lengths"])
            saved["memory_command"] = command_line()
        if args.part == "decoding":
            saved["decoding"] = decoding(shapes["contexts"], args.rounds, args.new_tokens)
            saved["decoding_command"] = command_line()
        (RESULTS / "length.json").write_text(json.dumps(saved, indent=2) + "\n")
        if args.part == "layer":
            memory_in_a_fresh_process(args)
            return
        args.render_only = True
    if args.render_only:
        saved = json.loads((RESULTS / "length.json").read_text())
        shapes = saved["shapes"]
        rows = render(shapes["lengths"], shapes["contexts"], shapes["tokens"], saved["layer"], saved["lm_step"], saved["decoding"])
        saved["rows"] = rows
        (RESULTS / "length.json").write_text(json.dumps(saved, indent=2) + "\n")
        for label, value in rows:
            print(f"  {label}  {value}")
        figure(shapes["lengths"], saved["layer"], saved["lm_step"], shapes["contexts"], saved["decoding"], ROOT / "docs" / "length" / "length.png")
        write_markdown(saved)
        return
    names = list(MECHANISMS)
    print("1. one attention layer, forward + backward", flush=True)
    layer_results = scaling("layer", names, args.lengths, args.tokens, args.rounds, args.explicit_gib, attention_step)
    print("2. LM train step", flush=True)
    lm_results = scaling("lm", names, args.lengths, args.tokens, args.rounds, args.explicit_gib, lm_step)
    print("3. decoding", flush=True)
    decode_results = decoding(args.contexts, args.rounds, args.new_tokens)
    rows = render(args.lengths, args.contexts, args.tokens, layer_results, lm_results, decode_results)
    report = {
        **environment(args.rounds),
        "shapes": {"d_model": D, "heads": HEADS, "window": WINDOW, "tokens": args.tokens, "lengths": args.lengths, "contexts": args.contexts, "pos_enc": "rotary", "lm_layers": 2},
        "layer": layer_results,
        "lm_step": lm_results,
        "decoding": decode_results,
    }
    publish("length", "Attention at length: time, memory, slope, crossover; decoding cost per token", rows, report)
    print("4. peak memory", flush=True)
    memory_in_a_fresh_process(args)


if __name__ == "__main__":
    main()

"""attnlab's transformer training step against its peers, and each speed lever on its own.

One encoder-decoder at the same settings everywhere: d 256, 3+3 layers, 4 heads, FFN 1024, vocab
8,000, dropout 0.1 (embeddings, residuals, FFN, attention weights), batch 64 x 32 tokens, fp32,
label-smoothed cross-entropy, AdamW:

- attnlab, through its config (``python train.py arch.d_model=256 arch.d_ff=1024``) and registry;
- Hugging Face Marian (``attn_implementation="sdpa"``), x-transformers' XTransformer, and a model
  around ``nn.Transformer`` (peers only as benchmark dependencies: ``pip install x-transformers``);
  each with plain ``torch.optim.AdamW``, as their users get it.

One lever is a setting of the process, not of the model (``keep_freed_memory``, attnlab.run.memory:
glibc keeps freed memory instead of paging every big tensor in afresh), so the variants live in two
worker processes, one computing at a time: one with glibc's defaults, where the peers run as their
users run them, and one that keeps freed memory, as train.py runs; the peers run there too, which
compares the model code alone on the same allocator.

Variants of attnlab, each lever alone and then together (the defaults):
  before     PyTorch's dropout (attention dropout inside SDPA), AdamW's for-loop, glibc's defaults
             (attnlab until this benchmark)
  +dropout   attnlab.dropout's packed random numbers and float multiplier, attention dropout on
             the explicit path with them
  +memory    freed memory kept (keep_freed_memory=true)
  +fused     AdamW(fused=True): one kernel for all parameters (task.optimizer.fused)
  default    the config as it ships (the levers that won)

The order rotates every round; each ratio is the median of per-round ratios (min-max spread).
A compile lever (``task.compile=true``) is timed apart: its first steps pay the compilation,
so it reports when that is paid back. Writes benchmarks/results/peers.json.

    python benchmarks/peers.py [--rounds N] [--steps N] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import statistics
import time

import torch
import torch.nn.functional as F
from composed import composed
from harness import environment, publish, ratio_summary, rotate, spread
from hydra.utils import instantiate
from torch import nn

from attnlab.dropout import dropout_implementation
from attnlab.models.factory import build_seq2seq
from attnlab.run.memory import keep_freed_memory
from attnlab.run.checks import config_spec

V, D, LAYERS, HEADS, FF, P, B, T, PAD = 8000, 256, 3, 4, 1024, 0.1, 64, 32, 0
OVERRIDES = [f"arch.d_model={D}", f"arch.d_ff={FF}", f"arch.num_encoder_layers={LAYERS}", f"arch.num_decoder_layers={LAYERS}", f"arch.dropout={P}", f"attention.num_heads={HEADS}", f"attention.dropout={P}"]


def attnlab_model():
    cfg = composed(OVERRIDES)
    specs = {key: config_spec(cfg[key], key) for key in ("arch", "attention", "pos_enc")}
    torch.manual_seed(0)
    model = build_seq2seq(specs["arch"], specs["attention"], specs["pos_enc"], V, V, PAD)
    return model, (lambda src, tgt_in: model(src, tgt_in)[0]), (lambda params, **kw: instantiate(cfg.task.optimizer)(params, **kw))


def marian_model():
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=V, d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
        encoder_ffn_dim=FF, decoder_ffn_dim=FF, dropout=P, attention_dropout=P, activation_dropout=P, activation_function="relu",
        max_position_embeddings=T, pad_token_id=PAD, decoder_start_token_id=2, eos_token_id=3, scale_embedding=True,
    )
    torch.manual_seed(0)
    model = MarianMTModel._from_config(config, attn_implementation="sdpa")
    return model, (lambda src, tgt_in: model(input_ids=src, attention_mask=src != PAD, decoder_input_ids=tgt_in).logits), torch.optim.AdamW


def x_transformers_model():
    from x_transformers import XTransformer

    torch.manual_seed(0)
    model = XTransformer(
        dim=D, tie_token_emb=True, enc_num_tokens=V, enc_depth=LAYERS, enc_heads=HEADS, enc_max_seq_len=T, enc_attn_dropout=P, enc_ff_dropout=P,
        dec_num_tokens=V, dec_depth=LAYERS, dec_heads=HEADS, dec_max_seq_len=T, dec_attn_dropout=P, dec_ff_dropout=P,
    )

    def logits(src, tgt_in):
        mask = src != PAD
        memory = model.encoder(src, mask=mask, return_embeddings=True)
        return model.decoder.net(tgt_in, context=memory, context_mask=mask)

    return model, logits, torch.optim.AdamW


class TorchTransformer(nn.Module):
    """The textbook model around nn.Transformer: embeddings, sinusoidal positions, tied output."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, D, padding_idx=PAD)
        position = torch.arange(T).unsqueeze(1)
        div = torch.exp(torch.arange(0, D, 2) * (-math.log(10000.0) / D))
        pe = torch.zeros(T, D)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe)
        self.dropout = nn.Dropout(P)
        self.transformer = nn.Transformer(D, HEADS, LAYERS, LAYERS, FF, P, batch_first=True)
        self.out = nn.Linear(D, V)
        self.out.weight = self.embed.weight

    def forward(self, src, tgt_in):
        def embed(x):
            return self.dropout(self.embed(x) * math.sqrt(D) + self.pe[: x.size(1)])

        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1))
        y = self.transformer(embed(src), embed(tgt_in), tgt_mask=causal, src_key_padding_mask=src == PAD, memory_key_padding_mask=src == PAD)
        return self.out(y)


def torch_transformer_model():
    torch.manual_seed(0)
    model = TorchTransformer()
    return model, model, torch.optim.AdamW


class Trainer:
    """One model's training step on the shared batch."""

    def __init__(self, built, dropout: str = "packed", optimizer_kwargs: dict | None = None):
        self.model, self.logits, make_optimizer = built
        self.optimizer = make_optimizer(list(self.model.parameters()), **(optimizer_kwargs or {}))
        self.dropout = dropout
        self.model.train()

    def step(self, src, tgt):
        with dropout_implementation(self.dropout):
            logits = self.logits(src, tgt[:, :-1])  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=PAD, label_smoothing=0.1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss


def step_seconds(trainer: Trainer, batch, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.step(*batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_payback(batch, steps: int) -> dict:
    """Eager vs ``model.compile()`` (what task.compile=true does): compile seconds, step times,
    and the step count at which the compiled run catches up."""
    result = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        trainer = Trainer(attnlab_model())
        if compiled:
            trainer.model.compile()
        start = time.perf_counter()
        trainer.step(*batch)
        first = time.perf_counter() - start
        result[name] = {"first_step_s": first, "step_s": step_seconds(trainer, batch, steps)}
    saved = result["eager"]["step_s"] - result["compiled"]["step_s"]
    extra = result["compiled"]["first_step_s"] - result["eager"]["first_step_s"]
    result["speedup"] = result["eager"]["step_s"] / result["compiled"]["step_s"]
    result["payback_steps"] = math.ceil(extra / saved) if saved > 0 else None
    return result


# Where each variant runs: a process with glibc's defaults (the peers as their users run them) or
# one that keeps freed memory as train.py does (attnlab as it ships; the peers once more, for a
# comparison of the model code alone on the same allocator).
PROCESSES = {"glibc defaults": False, "freed memory kept": True}
PEERS = {"marian_sdpa": marian_model, "x_transformers": x_transformers_model, "nn_transformer": torch_transformer_model}
ATTNLAB = {  # name: (process, dropout, optimizer arguments over the config's)
    "before": ("glibc defaults", "native", {"fused": False}),
    "+dropout": ("glibc defaults", "packed", {"fused": False}),
    "+memory": ("freed memory kept", "native", {"fused": False}),
    "+fused": ("glibc defaults", "native", {}),
    "default": ("freed memory kept", "packed", {}),
}


def variants_in(process: str) -> dict:
    """name -> a function that builds its Trainer, for the variants that run in ``process``."""
    peers = {f"{name} ({process})": (lambda build=build: Trainer(build(), dropout="native")) for name, build in PEERS.items()}
    ours = {f"attnlab {name}": (lambda d=d, kw=kw: Trainer(attnlab_model(), dropout=d, optimizer_kwargs=kw)) for name, (where, d, kw) in ATTNLAB.items() if where == process}
    return {**peers, **ours}


def shared_batch():
    torch.manual_seed(0)
    return torch.randint(4, V, (B, T)), torch.randint(4, V, (B, T + 1))


def worker(conn, process: str) -> None:
    """A process holding the trainers of ``process``: answers (name, steps) with the median step
    seconds, until it is sent None."""
    if PROCESSES[process]:
        keep_freed_memory()
    batch = shared_batch()
    trainers = {name: build() for name, build in variants_in(process).items()}
    for trainer in trainers.values():
        step_seconds(trainer, batch, 2)  # warm-up
    conn.send(sorted(trainers))
    while (request := conn.recv()) is not None:
        name, steps = request
        conn.send(step_seconds(trainers[name], batch, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps per measurement")
    parser.add_argument("--compile", action="store_true", help="also time task.compile=true and its payback")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # a fork of a process with OpenMP threads may hang
    connections, children, where = {}, [], {}
    for process in PROCESSES:
        parent_end, child_end = context.Pipe()
        child = context.Process(target=worker, args=(child_end, process), daemon=True)
        child.start()
        connections[process] = parent_end
        children.append(child)
    for process, conn in connections.items():
        where.update({name: conn for name in conn.recv()})  # blocks until its trainers are warm
    names = list(variants_in("glibc defaults")) + list(variants_in("freed memory kept"))  # the table's order

    def measure(name: str) -> float:
        where[name].send((name, args.steps))
        return where[name].recv()  # one process computes at a time: the other waits on its pipe

    per = rotate({name: name for name in names}, args.rounds, measure)
    for conn in connections.values():
        conn.send(None)
    for child in children:
        child.join()

    ours = per["attnlab default"]
    shipped = {name: per[f"{name} (glibc defaults)"] for name in PEERS}  # the peers as their users get them
    same = {name: per[f"{name} (freed memory kept)"] for name in PEERS}
    fastest = min(PEERS, key=lambda name: statistics.median(shipped[name]))
    fastest_same = min(PEERS, key=lambda name: statistics.median(same[name]))
    report = {
        **environment(args.rounds),
        "settings": f"d {D}, {LAYERS}+{LAYERS} layers, {HEADS} heads, FFN {FF}, vocab {V}, dropout {P}, batch {B} x {T} tokens, fp32, AdamW",
        "processes": "two worker processes, one computing at a time: glibc's malloc defaults, and freed memory kept (keep_freed_memory=true, as train.py runs)",
        "step_ms": {name: 1000 * statistics.median(times) for name, times in per.items()},
        "speedup_vs_peer": {name: ratio_summary(shipped[name], ours) for name in PEERS},  # peer time / attnlab time
        "fastest_peer": fastest,
        "speedup_vs_peer_same_allocator": {name: ratio_summary(same[name], ours) for name in PEERS},
        "fastest_peer_same_allocator": fastest_same,
        "lever_speedup": {name: ratio_summary(per["attnlab before"], per[f"attnlab {name}"]) for name in ATTNLAB if name != "before"},
    }
    if args.compile:
        keep_freed_memory()  # the compiled and eager runs here as train.py runs them
        report["compile"] = compile_payback(shared_batch(), args.steps * 2)
    rows = [["settings", report["settings"]]]
    for name, ms in report["step_ms"].items():
        peer = name.split(" (")[0]
        vs = report["speedup_vs_peer" if name.endswith("(glibc defaults)") else "speedup_vs_peer_same_allocator"].get(peer)
        rows.append([name, f"{ms:.1f} ms/step" + (f"; attnlab default {spread(vs)} its speed" if vs else "")])
    rows.append([f"attnlab default vs the fastest peer as its users run it ({fastest})", spread(report["speedup_vs_peer"][fastest])])
    rows.append([f"attnlab default vs the fastest peer with memory kept too ({fastest_same})", spread(report["speedup_vs_peer_same_allocator"][fastest_same])])
    rows += [[f"lever {name} over before", spread(r)] for name, r in report["lever_speedup"].items()]
    if args.compile:
        c = report["compile"]
        rows.append(["task.compile=true", f"step ×{c['speedup']:.2f}, first step {c['compiled']['first_step_s']:.1f} s vs {c['eager']['first_step_s']:.2f} s; "
                     + (f"paid back after {c['payback_steps']} steps" if c["payback_steps"] else "never paid back: the compiled step is not faster")])
    publish("peers", "Transformer train step: attnlab (built from its config) against its peers", rows, report)


if __name__ == "__main__":
    main()

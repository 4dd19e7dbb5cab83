"""attnlab's transformer training step against its peers, and each speed lever on its own.

One encoder-decoder at the same settings everywhere: d 256, 3+3 layers, 4 heads, FFN 1024, vocab
8,000, dropout 0.1 (embeddings, residuals, FFN, attention weights), batch 64 x 32 tokens, fp32,
label-smoothed cross-entropy, AdamW. Built in one process:

- attnlab, through its config (``python train.py arch.d_model=256 arch.d_ff=1024``) and registry;
- Hugging Face Marian (``attn_implementation="sdpa"``), x-transformers' XTransformer, and a model
  around ``nn.Transformer`` (peers only as benchmark dependencies: ``pip install x-transformers``);
  each with plain ``torch.optim.AdamW``, as their users get it.

Variants of attnlab, each lever alone and then together (the defaults):
  before      PyTorch's dropout, AdamW's for-loop (attnlab until this benchmark)
  +dropout    attnlab.dropout's packed random numbers
  +fused      AdamW(fused=True)
  default     the config as it ships (all levers that won)

The order rotates every round; each ratio is the median of per-round ratios (min-max spread).
A compile lever (``task.compile=true``) is timed apart: its first steps pay the compilation,
so it reports when that is paid back. Writes benchmarks/results/peers.json.

    python benchmarks/peers.py [--rounds N] [--steps N] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from attnlab.run.setup import config_spec

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps per measurement")
    parser.add_argument("--compile", action="store_true", help="also time task.compile=true and its payback")
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = (torch.randint(4, V, (B, T)), torch.randint(4, V, (B, T + 1)))
    peers = {"marian_sdpa": marian_model, "x_transformers": x_transformers_model, "nn_transformer": torch_transformer_model}
    trainers = {name: Trainer(build(), dropout="native") for name, build in peers.items()}
    levers = {
        "before": dict(dropout="native", optimizer_kwargs={"foreach": False}),
        "+dropout": dict(dropout="packed", optimizer_kwargs={"foreach": False}),
        "+fused": dict(dropout="native", optimizer_kwargs={"foreach": False, "fused": True}),
        "default": dict(dropout="packed"),
    }
    trainers.update({f"attnlab {name}": Trainer(attnlab_model(), **kw) for name, kw in levers.items()})
    for trainer in trainers.values():
        step_seconds(trainer, batch, 2)  # warm-up
    per = rotate(trainers, args.rounds, lambda trainer: step_seconds(trainer, batch, args.steps))

    ours = per["attnlab default"]
    fastest = min(peers, key=lambda name: statistics.median(per[name]))
    report = {
        **environment(args.rounds),
        "settings": f"d {D}, {LAYERS}+{LAYERS} layers, {HEADS} heads, FFN {FF}, vocab {V}, dropout {P}, batch {B} x {T} tokens, fp32, AdamW",
        "step_ms": {name: 1000 * statistics.median(times) for name, times in per.items()},
        "speedup_vs_peer": {name: ratio_summary(per[name], ours) for name in peers},  # peer time / attnlab time
        "fastest_peer": fastest,
        "lever_speedup": {name: ratio_summary(per["attnlab before"], per[f"attnlab {name}"]) for name in levers if name != "before"},
    }
    if args.compile:
        report["compile"] = compile_payback(batch, args.steps * 2)
    rows = [["settings", report["settings"]]]
    for name, ms in report["step_ms"].items():
        rows.append([name, f"{ms:.1f} ms/step" + (f"; attnlab default is {spread(report['speedup_vs_peer'][name])} faster" if name in peers else "")])
    rows.append([f"attnlab default vs the fastest peer ({fastest})", spread(report["speedup_vs_peer"][fastest])])
    rows += [[f"lever {name} over before", spread(r)] for name, r in report["lever_speedup"].items()]
    if args.compile:
        c = report["compile"]
        rows.append(["task.compile=true", f"step ×{c['speedup']:.2f}, first step {c['compiled']['first_step_s']:.1f} s vs {c['eager']['first_step_s']:.2f} s; "
                     + (f"paid back after {c['payback_steps']} steps" if c["payback_steps"] else "never paid back: the compiled step is not faster")])
    publish("peers", "Transformer train step: attnlab (built from its config) against its peers, in one process", "python benchmarks/peers.py" + (" --compile" if args.compile else ""), rows, report)

if __name__ == "__main__":
    main()

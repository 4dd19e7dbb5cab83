"""Language modelling (GPT): next-token prediction with a decoder-only transformer of any
self-attention and positional encoding, or an RNN language model.

Metrics: ``loss`` (per token), ``ppl``, and bits per character (``bpc``, character level) or per
byte of UTF-8 text (``bpb``, subwords) — comparable across tokenizers. At every evaluation a few
samples continue a fixed prompt (``<split>_samples.txt``, a W&B table).
"""

from __future__ import annotations

import hashlib

import math
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab
from attnlab.decoding import generate
from attnlab.errors import ConfigError
from attnlab.models.base import inference
from attnlab.models.factory import build_language_model
from attnlab.metrics import PositionSums
from attnlab.tasks.base import AttentionExample, AttentionMap, Curve, Evaluation, Task, plain
from attnlab.tasks.shapes import TEXT_FIELDS, TEXT_SCHEMA


class UnknownCharactersWarning(UserWarning):
    """A prompt held tokens the vocabulary does not know (they are read as <unk>)."""


class LanguageModelTask(Task):
    name = "lm"
    monitor = "val/loss"
    monitor_mode = "min"
    prediction_name = "samples"
    example_identity = ("block",)
    example_measures = {"loss": "mean_nll", "ppl": "perplexity", "bpc": "bits_per_byte", "bpb": "bits_per_byte"}
    report_columns = [
        ("val loss", "val/loss", False),
        ("test ppl", "test/ppl", False),  # first test column: the headline a dashboard charts
        ("test loss", "test/loss", False),
        ("test bits/char", "test/bpc", False),
        ("test bits/byte", "test/bpb", False),
    ]
    data_fields = {**TEXT_FIELDS, "block_size": lambda dm: dm.block_size, "test_block_size": lambda dm: dm.test_block_size}
    checkpoint_keys = ("vocab", "tokenizer")
    hparam_schema = {
        **TEXT_SCHEMA,
        "block_size": "int",
        "test_block_size": "int",
        "prompt": "str",
        "num_samples": "int",
        "sample_tokens": "int",
        "temperature": "number",
        "top_k": {"optional": "int"},
        "top_p": {"optional": "number"},
    }
    data_kinds = ("stream",)
    curve_axes = {"loss_by_position": ("position", "loss")}
    figure_keys = ("attention/self/example_0",)

    def __init__(
        self,
        arch: Mapping[str, Any],
        attention: Mapping[str, Any],
        pos_enc: Mapping[str, Any],
        vocab: Sequence[str],
        tokenizer: Any = "char",
        specials: Optional[Mapping[str, str]] = None,
        block_size: int = 64,
        test_block_size: Optional[int] = None,
        prompt: str = "\n",
        num_samples: int = 2,
        sample_tokens: int = 200,
        temperature: float = 0.8,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        data: Optional[Mapping[str, Any]] = None,
        choices: Optional[Mapping[str, str]] = None,
        optimizer: Optional[Callable] = None,
        scheduler: Optional[Callable] = None,
        monitor: Optional[str] = None,
        monitor_mode: Optional[str] = None,
        decay: str = "matrices",
        compile: bool = False,
    ):
        super().__init__(optimizer, scheduler, monitor, monitor_mode, decay)
        self.save_task_hyperparameters(
            {"arch": arch, "attention": attention, "pos_enc": pos_enc},
            data,
            choices,
            vocab=list(vocab),
            specials=plain(specials),
            tokenizer=plain(tokenizer),
            block_size=block_size,
            test_block_size=test_block_size or block_size,
            prompt=prompt,
            num_samples=num_samples,
            sample_tokens=sample_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )
        self.vocab = Vocab(self.hparams.vocab, self.hparams.specials)
        self.tokenizer = Tokenizer.from_spec(self.hparams.tokenizer)
        hp = self.hparams
        self.model = build_language_model(hp.arch, hp.attention, hp.pos_enc, len(self.vocab), self.vocab.pad_id)
        if self.model.max_positions is not None and block_size > self.model.max_positions:
            raise ConfigError(f"data.block_size={block_size} is larger than pos_enc.max_len={self.model.max_positions}: the learned positions end inside a block")
        if compile:
            self.model.compile()
        self.char_level = self.tokenizer.kind == "char"
        # what each token weighs in bytes of text: bits per byte compare tokenizers
        self.register_buffer("token_bytes", torch.tensor([self._bytes(t) for t in self.vocab.tokens], dtype=torch.float64), persistent=False)
        self.sums = PositionSums(max(block_size, self.hparams.test_block_size))

    def _bytes(self, token: str) -> int:
        if self.vocab.index.get(token) in self.vocab.special_ids:
            return 0
        return len(token.replace("▁", " ").encode("utf-8"))

    # -- training ---------------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)[0]

    def loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Next-token cross-entropy over the blocks (B, block + 1)."""
        blocks = batch["tokens"]
        logits = self(blocks[:, :-1])  # (B, block, V)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), blocks[:, 1:].reshape(-1))

    def batch_tokens(self, batch: Dict[str, Any]) -> int:
        return batch["tokens"][:, 1:].numel()

    # -- evaluation -------------------------------------------------------------------------------
    def reset_evaluation(self) -> None:
        self.sums.reset()
        self._blocks: List[Dict[str, Any]] = []

    def evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        blocks = batch["tokens"]
        logits = self(blocks[:, :-1]).float()
        targets = blocks[:, 1:]
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, L)
        nbytes = self.token_bytes[targets]  # (B, L)
        self.sums.update(nll, nbytes)
        seen = slice(0, self.hparams.block_size)  # as the headline numbers: the contexts training saw
        for i, offset in enumerate(batch["index"].tolist()):
            self._blocks.append({
                "id": offset,
                "block": hashlib.sha1(targets[i].cpu().numpy().tobytes()).hexdigest()[:12],  # which text it scored
                "nll": float(nll[i, seen].sum()),
                "total": int(nll[i, seen].numel()),
                "bytes": float(nbytes[i, seen].sum()),
            })

    def evaluation_end(self, split: str) -> Evaluation:
        sums = {k: v.cpu() for k, v in self.sums.compute().items()}
        seen = slice(0, self.hparams.block_size)  # the headline numbers: the contexts training saw
        nll, tokens, nbytes = (float(sums[k][seen].sum()) for k in ("nll", "tokens", "bytes"))
        loss = nll / max(tokens, 1.0)
        bits = nll / math.log(2) / max(nbytes, 1.0)
        hp = self.hparams
        samples = self.generate([hp.prompt] * hp.num_samples, hp.sample_tokens, hp.temperature, hp.top_k, hp.top_p, seed=0)
        self._last_sample = hp.prompt + samples[0] if samples else None
        return Evaluation(
            split=split,
            metrics={f"{split}/loss": loss, f"{split}/ppl": math.exp(min(loss, 50.0)), f"{split}/{'bpc' if self.char_level else 'bpb'}": bits},
            predictions=[s.replace("\n", "\\n") for s in samples],  # one sample a line in the file
            inputs=[hp.prompt + s for s in samples],  # heatmaps: how the model read its own text
            examples=[{"prompt": hp.prompt, "sample": s} for s in samples],
            curves={"loss_by_position": Curve(self._by_position(sums), *self.curve_axes["loss_by_position"], title=f"{split} loss by position in the context")},
            records=sorted(self.gather_objects(self._blocks), key=lambda r: r["id"]),
        )

    def result_extras(self) -> Dict[str, Any]:
        # the run's summary ends with it: what the model writes is the quickest check that it learned
        sample = getattr(self, "_last_sample", None)
        return {"sample": sample} if sample else {}

    def _by_position(self, sums: Dict[str, torch.Tensor]) -> List[Dict[str, Any]]:
        """The loss in 16 bins of context position (1 = no context yet): does the model keep
        predicting as well past the block length it trained on?"""
        length = int((sums["tokens"] > 0).sum())
        width = max(1, length // 16)
        rows = []
        for start in range(0, length, width):
            part = slice(start, min(start + width, length))
            tokens = float(sums["tokens"][part].sum())
            rows.append({"position": part.stop, "loss": float(sums["nll"][part].sum()) / tokens, "tokens": int(tokens)})
        return rows

    # -- generation -----------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> List[int]:
        pieces = self.tokenizer.tokenize(prompt)
        unknown = sorted({p for p in pieces if p not in self.vocab.index})
        if unknown:
            warnings.warn(
                f"the prompt holds {', '.join(map(repr, unknown[:10]))}, which the training text never had: read as {self.vocab.specials['unk']}",
                UnknownCharactersWarning,
                stacklevel=3,
            )
        return self.vocab.encode(pieces) or [self.vocab.eos_id]  # an empty prompt starts from an end of text

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.detokenize([self.vocab.tokens[i] for i in ids if i not in self.vocab.special_ids])

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        seed: Optional[int] = None,
        use_cache: bool = True,
        progress: Optional[Callable[[], None]] = None,
    ) -> List[str]:
        """Each prompt continued by ``max_new_tokens`` tokens (the continuation only). The same
        ``seed`` gives the same text."""
        with inference(self):
            generator = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
            out = []
            for prompt in prompts:  # prompts differ in length: one at a time
                ids = torch.tensor([self.encode_prompt(prompt)], device=self.device)
                # the contexts training saw: positions past block_size were never trained
                sequence = generate(self.model, ids, max_new_tokens, temperature, top_k, top_p, generator, use_cache, context=self.hparams.block_size, progress=progress)
                out.append(self.decode(sequence[0, ids.size(1):].tolist()))
        return out

    def attention_examples(self, inputs: Sequence[str]) -> List[AttentionExample]:
        """Which earlier characters each character attends to, in every layer and head."""
        with inference(self):
            examples = []
            for text in inputs:
                ids = self.encode_prompt(text)[-self.hparams.block_size :]
                tokens = torch.tensor([ids], device=self.device)
                _, weights = self.model(tokens, need_weights=True)
                labels = [self.vocab.tokens[i].replace("\n", "\\n") for i in ids]
                if "self" in weights and weights["self"] and weights["self"][0] is not None:
                    maps = {"self": AttentionMap([w[0].float().cpu().numpy() for w in weights["self"]], labels, labels)}
                    examples.append(AttentionExample(text[:40], maps))
        return examples

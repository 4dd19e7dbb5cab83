"""Translating with a trained encoder-decoder: text in, text out.

The inference API that ``attnlab-translate``, ``eval.py``, the heatmap callback and the
translation task's own evaluation all use::

    translator = Translator.from_checkpoint("run/checkpoints/last.ckpt")
    translator.translate(["veintiún mil"])                              # greedy
    translator.translate(["veintiún mil"], {"strategy": "beam", "beam_size": 5})
    translator.translate_n_best(["dos mil"], beam_size=5, n_best=3)     # (text, score, log-prob)
    translator.attention_maps(["tres mil"])                             # every attention matrix
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab
from attnlab.decoding import beam_search, greedy_decode
from attnlab.models.base import Seq2Seq, inference

class TruncatedInputWarning(UserWarning):
    """A source longer than the model can read was cut."""


DEFAULT_DECODING = {"strategy": "greedy", "beam_size": 5, "alpha": 0.6}
STRATEGIES = ("greedy", "beam")

# rows (queries) and columns (keys) of each kind of attention: the tokens that label them
ATTENTION_AXES = {"cross": ("output", "source"), "encoder_self": ("source", "source"), "decoder_self": ("output", "input")}


def decoding_settings(decoding: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``decoding`` over the defaults, with its strategy checked."""
    settings = {**DEFAULT_DECODING, **(decoding or {})}
    if settings["strategy"] not in STRATEGIES:
        raise ValueError(f"task.decoding.strategy must be one of {', '.join(STRATEGIES)}; got {settings['strategy']!r}")
    return settings


class Translator:
    """A Seq2Seq model with its vocabularies and tokenizers, and the output-length rule
    ``max_len_a x source length + max_len_b``."""

    def __init__(
        self,
        model: Seq2Seq,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        max_len_a: float = 2.0,
        max_len_b: int = 10,
    ):
        self.model = model
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.max_len_a, self.max_len_b = max_len_a, max_len_b

    @classmethod
    def from_checkpoint(cls, path, map_location="cpu") -> "Translator":
        from attnlab.tasks.checkpoints import load_task

        return load_task(path, map_location).translator

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def max_output_len(self, src: torch.Tensor) -> torch.Tensor:
        """Per sentence (B,): max_len_a x its own source length + max_len_b (never the batch's)."""
        lengths = src.ne(PAD_ID).sum(dim=1)
        return (self.max_len_a * lengths + self.max_len_b).long()

    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """Raw sentences -> padded ids (B, S) on the model's device, EOS-terminated.

        A model with a learned positional table reads at most ``model.max_source_positions``
        tokens: a longer sentence is cut to that (its end is dropped) with a warning that says so.
        """
        ids = [self.src_vocab.encode(self.src_tokenizer.tokenize(s)) for s in sentences]
        limit = self.max_source_tokens
        for i, row in enumerate(ids):
            if limit is not None and len(row) > limit:
                warnings.warn(f"sentence {i + 1}: {self.truncation_note(len(row))}", TruncatedInputWarning, stacklevel=2)
                ids[i] = row[:limit]
        ids = [row + [EOS_ID] for row in ids]
        src = torch.full((len(ids), max(map(len, ids))), PAD_ID, dtype=torch.long, device=self.device)
        for i, row in enumerate(ids):
            src[i, : len(row)] = torch.tensor(row)
        return src

    @property
    def max_source_tokens(self) -> Optional[int]:
        """The longest source (in tokens, EOS not counted) the model can read; None: any."""
        limit = self.model.max_source_positions
        return None if limit is None else limit - 1

    def source_tokens(self, sentence: str) -> int:
        return len(self.src_tokenizer.tokenize(sentence))

    def truncation_note(self, tokens: int) -> str:
        limit = self.max_source_tokens
        return f"{tokens} tokens, but this model reads at most {limit} (its learned positions end at {limit + 1}, EOS included): translating the first {limit}"

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tgt_tokenizer.detokenize(self.tgt_vocab.decode(ids))

    @torch.no_grad()
    def translate_ids(self, src: torch.Tensor, decoding: Optional[Mapping[str, Any]] = None) -> List[str]:
        """Decode (B, S) source ids; ``decoding`` (strategy, beam_size, alpha) defaults to greedy."""
        decoding = decoding_settings(decoding)
        if decoding["strategy"] == "beam":
            beams = beam_search(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), decoding["beam_size"], decoding["alpha"])
            rows = [hyps[0].tokens for hyps in beams]
        else:
            rows = greedy_decode(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src))[0].tolist()
        return [self.detokenize(row) for row in rows]

    def _in_eval_mode(self, fn):
        with inference(self.model):
            return fn()

    def translate(self, sentences: Sequence[str], decoding: Optional[Mapping[str, Any]] = None) -> List[str]:
        """Translate raw source sentences."""
        return self._in_eval_mode(lambda: self.translate_ids(self.encode(sentences), decoding))

    def translate_n_best(self, sentences: Sequence[str], beam_size: int, n_best: int, alpha: float = 0.6) -> List[List[Tuple[str, float, float]]]:
        """Per sentence, the ``n_best`` beam-search translations as (text, score, log-probability)."""

        def run():
            src = self.encode(sentences)
            return beam_search(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), beam_size, alpha, n_best)

        return [[(self.detokenize(h.tokens), h.score, h.log_prob) for h in hyps] for hyps in self._in_eval_mode(run)]

    def attention_maps(self, sentences: Sequence[str]) -> List[Dict[str, Any]]:
        """Greedy translations with every attention matrix, one dict per sentence.

        Each: ``source`` and ``output`` tokens (with ``<eos>``), ``input`` (the decoder's inputs),
        ``hypothesis`` text and ``weights``: kind (``cross``, ``encoder_self``, ``decoder_self``)
        -> per layer (H, T, S) arrays cropped to the sentence's own tokens.
        """

        def run():
            src = self.encode(sentences)
            return greedy_decode(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), need_weights=True)

        tokens, weights = self._in_eval_mode(run)
        maps = []
        for i, sentence in enumerate(sentences):
            source = self.src_tokenizer.tokenize(sentence) + ["<eos>"]
            generated = []  # every token the decoder produced, specials included, up to EOS
            for token in tokens[i].tolist():
                if token == PAD_ID:
                    break
                generated.append(token)
                if token == EOS_ID:
                    break
            output = [self.tgt_vocab.tokens[t] for t in generated]
            lengths = {"source": len(source), "output": len(output), "input": len(output)}
            per_kind = {}
            for kind, layers in weights.items():
                rows, cols = ATTENTION_AXES[kind]
                per_kind[kind] = [w[i, :, : lengths[rows], : lengths[cols]].float().cpu().numpy() for w in layers]
            maps.append(
                {"source": source, "output": output, "input": ["<bos>"] + output[:-1], "hypothesis": self.detokenize(generated), "weights": per_kind}
            )
        return maps

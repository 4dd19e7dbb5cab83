"""Masked-language-model pre-training of an encoder (BERT, Devlin et al. 2019).

Of each text's tokens, ``mask_prob`` (15 %) are chosen for prediction; of those, 80 % are
replaced by the mask token, 10 % by a random token and 10 % kept (configurable). With
``whole_word`` a word's tokens are chosen together. The loss is the cross-entropy on the chosen
tokens only. Training draws its masks from the run's RNG; evaluation masks every text the same
way every time (a generator seeded by the text's index), so validation losses compare.

:meth:`MaskedLMTask.fill_mask` (and ``attnlab-fill-mask``) ranks tokens for each ``[MASK]``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab
from attnlab.errors import ConfigError
from attnlab.models.base import inference
from attnlab.models.factory import build_masked_lm
from attnlab.tasks.base import AttentionExample, AttentionMap, Evaluation, Task, plain
from attnlab.tasks.shapes import TEXT_FIELDS, TEXT_SCHEMA

MASK_MARK = "[MASK]"
IGNORE = -100  # cross_entropy's ignore_index: positions that are not predicted


def mask_tokens(
    tokens: torch.Tensor,
    word_starts: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    random_ids: Tuple[int, int],
    mask_prob: float = 0.15,
    mask_token_prob: float = 0.8,
    random_token_prob: float = 0.1,
    whole_word: bool = False,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of (B, L) ``tokens``. ``maskable`` (B, L) marks the positions that may be
    chosen (not padding or specials); ``word_starts`` (B, L) where words begin; ``random_ids``
    the [low, high) range of ordinary tokens. Returns the inputs (B, L) and the targets (B, L):
    the original token where chosen, else -100. Every text with a maskable token gets at least one."""
    device = tokens.device

    def uniform(shape) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=generator.device if generator is not None else device).to(device)

    if whole_word:
        word_id = torch.cumsum(word_starts.long(), dim=1)  # (B, L): the word each token is in
        chosen_word = uniform((tokens.size(0), tokens.size(1) + 1)) < mask_prob  # (B, words), over-sized
        chosen = chosen_word.gather(1, word_id.clamp(max=tokens.size(1))) & maskable
    else:
        chosen = (uniform(tokens.shape) < mask_prob) & maskable
    # a text that drew nothing predicts one of its tokens: no batch row is wasted
    empty = ~chosen.any(dim=1) & maskable.any(dim=1)
    if empty.any():
        pick = (uniform(tokens.shape) + maskable.float()).argmax(dim=1)  # a random maskable position
        if whole_word:  # ... and the rest of its word
            same_word = word_id.eq(word_id.gather(1, pick.unsqueeze(1))) & maskable
            chosen |= same_word & empty.unsqueeze(1)
        else:
            chosen[empty, pick[empty]] = True
    targets = tokens.masked_fill(~chosen, IGNORE)
    roll = uniform(tokens.shape)
    inputs = tokens.clone()
    inputs[chosen & (roll < mask_token_prob)] = mask_id
    swap = chosen & (roll >= mask_token_prob) & (roll < mask_token_prob + random_token_prob)
    randoms = (uniform(tokens.shape) * (random_ids[1] - random_ids[0])).long() + random_ids[0]
    inputs[swap] = randoms[swap]
    return inputs, targets


class MaskedLMTask(Task):
    name = "mlm"
    monitor = "val/loss"
    monitor_mode = "min"
    prediction_name = "fills"
    example_identity = ("text",)
    example_measures = {"acc": "accuracy", "loss": "mean_nll", "ppl": "perplexity"}
    report_columns = [("val loss", "val/loss", False), ("test loss", "test/loss", False), ("test acc", "test/acc", True), ("test ppl", "test/ppl", False)]
    data_fields = TEXT_FIELDS
    checkpoint_keys = ("vocab", "tokenizer")
    hparam_schema = {
        **TEXT_SCHEMA,
        "mask_prob": "number",
        "mask_token_prob": "number",
        "random_token_prob": "number",
        "whole_word": "bool",
    }
    data_kinds = ("text",)

    def __init__(
        self,
        arch: Mapping[str, Any],
        attention: Mapping[str, Any],
        pos_enc: Mapping[str, Any],
        vocab: Sequence[str],
        tokenizer: Any = "word",
        specials: Optional[Mapping[str, str]] = None,
        mask_prob: float = 0.15,
        mask_token_prob: float = 0.8,
        random_token_prob: float = 0.1,
        whole_word: bool = False,
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
        if not 0 < mask_prob < 1:
            raise ConfigError(f"task.mask_prob={mask_prob} must be in (0, 1)")
        if mask_token_prob < 0 or random_token_prob < 0 or mask_token_prob + random_token_prob > 1:
            raise ConfigError("task.mask_token_prob and task.random_token_prob must be >= 0 and sum to at most 1")
        self.save_task_hyperparameters(
            {"arch": arch, "attention": attention, "pos_enc": pos_enc},
            data,
            choices,
            vocab=list(vocab),
            specials=plain(specials),
            tokenizer=plain(tokenizer),
            mask_prob=mask_prob,
            mask_token_prob=mask_token_prob,
            random_token_prob=random_token_prob,
            whole_word=whole_word,
        )
        self.vocab = Vocab(self.hparams.vocab, self.hparams.specials)
        if self.vocab.mask_id is None:
            raise ConfigError(f"task=mlm needs a mask token ({self.vocab.specials['mask']}) in the vocabulary")
        self.tokenizer = Tokenizer.from_spec(self.hparams.tokenizer)
        hp = self.hparams
        self.model = build_masked_lm(hp.arch, hp.attention, hp.pos_enc, len(self.vocab), self.vocab.pad_id)
        if compile:
            self.model.compile()
        # ordinary tokens are the ids above the specials (attnlab's vocabularies put them first)
        self.random_ids = (max(self.vocab.special_ids) + 1, len(self.vocab))
        self.loss_metric, self.accuracy = MeanMetric(), MeanMetric()
        self._rows: List[tuple] = []

    def _maskable(self, tokens: torch.Tensor) -> torch.Tensor:
        special = torch.zeros_like(tokens, dtype=torch.bool)
        for i in self.vocab.special_ids:
            special |= tokens.eq(i)
        return ~special

    def _mask(self, batch: Dict[str, Any], generator: Optional[torch.Generator] = None):
        hp = self.hparams
        return mask_tokens(
            batch["tokens"], batch["word_starts"], self._maskable(batch["tokens"]), self.vocab.mask_id, self.random_ids,
            hp.mask_prob, hp.mask_token_prob, hp.random_token_prob, hp.whole_word, generator,
        )

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over the predicted positions, their logits (N, V) and targets (N,)."""
        chosen = targets.ne(IGNORE)
        logits = self.model(inputs, positions=chosen).float()  # (N, V): only where scored
        wanted = targets[chosen]
        return F.cross_entropy(logits, wanted), logits, wanted

    # -- training -----------------------------------------------------------------------------------
    def loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Cross-entropy on the positions chosen by a fresh masking of the batch."""
        inputs, targets = self._mask(batch)
        return self._loss(inputs, targets)[0]

    def batch_tokens(self, batch: Dict[str, Any]) -> int:
        return int(batch["tokens"].ne(self.vocab.pad_id).sum())

    # -- evaluation ---------------------------------------------------------------------------------
    def reset_evaluation(self) -> None:
        self.loss_metric.reset()
        self.accuracy.reset()
        self._rows = []

    def evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        rows = []
        for i, index in enumerate(batch["index"].tolist()):  # each text masked by its own generator
            one = {key: batch[key][i : i + 1] for key in ("tokens", "word_starts")}
            rows.append(self._mask(one, torch.Generator().manual_seed(1_000_003 + index)))
        inputs, targets = (torch.cat(parts) for parts in zip(*rows))
        loss, logits, wanted = self._loss(inputs, targets)
        predicted = logits.argmax(dim=-1)
        self.loss_metric.update(loss, weight=wanted.numel())
        right = predicted.eq(wanted)  # (N,): the chosen positions, row by row
        self.accuracy.update(right.float())
        chosen = targets.ne(IGNORE)
        counts = chosen.sum(dim=1).tolist()  # chosen positions per text
        per_text = zip(counts, right.split(counts), F.cross_entropy(logits, wanted, reduction="none").split(counts))
        filled = inputs.masked_scatter(chosen, predicted)  # every predicted position: the model's guess
        for i, index in enumerate(batch["index"].tolist()):
            # the fills file shows the text as the model saw it, with [its guess] where it predicted
            shown = [
                f"[{self.vocab.tokens[int(f)]}]" if c else self.vocab.tokens[int(t)]
                for t, f, c in zip(inputs[i], filled[i], chosen[i])
                if int(t) != self.vocab.pad_id
            ]
            count, hits, nll = next(per_text)
            self._rows.append((index, batch["text"][i], " ".join(shown), {"correct": int(hits.sum()), "total": count, "nll": float(nll.sum())}))

    def evaluation_end(self, split: str) -> Evaluation:
        rows = sorted(self.gather_objects(self._rows))
        loss = float(self.loss_metric.compute())
        return Evaluation(
            split=split,
            metrics={f"{split}/loss": loss, f"{split}/acc": float(self.accuracy.compute()), f"{split}/ppl": float(torch.exp(torch.tensor(loss)))},
            predictions=[fills for _, _, fills, _ in rows],
            inputs=[text for _, text, _, _ in rows],
            examples=[{"text": text, "fills": fills} for _, text, fills, _ in rows],
            records=[{"id": i, "text": text, "fills": fills, **scored} for i, text, fills, scored in rows],
        )

    # -- inference ------------------------------------------------------------------------------------
    def encode_with_masks(self, text: str) -> List[int]:
        """<bos> tokens <eos>, each ``[MASK]`` in the text becoming the mask token."""
        ids: List[int] = []
        for j, piece in enumerate(text.split(MASK_MARK)):
            if j:
                ids.append(self.vocab.mask_id)
            if piece.strip():
                ids.extend(self.vocab.encode(self.tokenizer.tokenize(piece.strip())))
        return [self.vocab.bos_id, *ids, self.vocab.eos_id]

    def display(self, token_id: int) -> str:
        """A vocabulary token as a reader writes it (no BPE "▁", no WordPiece "##")."""
        token = self.vocab.tokens[token_id]
        return token[1:] if token.startswith("▁") and len(token) > 1 else token[2:] if token.startswith("##") else token

    def fill_mask(self, texts: Sequence[str], top_k: int = 5) -> List[List[List[Tuple[str, float]]]]:
        """Per text, per ``[MASK]`` in it, the ``top_k`` (token, probability) pairs, best first."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1; got {top_k}")
        with inference(self):
            out = []
            for text in texts:
                ids = torch.tensor([self.encode_with_masks(text)], device=self.device)
                where = ids.eq(self.vocab.mask_id)
                if not where.any():
                    raise ValueError(f"no {MASK_MARK} in {text!r}")
                probs = torch.softmax(self.model(ids, positions=where).float(), dim=-1)  # (masks, V)
                for special in self.vocab.special_ids:
                    probs[:, special] = 0.0  # a fill is a word, never <pad> or <mask>
                best = probs.topk(min(top_k, probs.size(-1)), dim=-1)
                out.append([[(self.display(int(i)), float(p)) for p, i in zip(ps, ix)] for ps, ix in zip(best.values, best.indices)])
        return out

    def attention_examples(self, inputs: Sequence[str]) -> List[AttentionExample]:
        """Which tokens each token attends to, in every layer and head of the encoder (a
        ``[MASK]`` in the text is the mask token, as fill-mask reads it)."""
        examples = []
        with inference(self):
            for text in inputs:
                ids = self.encode_with_masks(text)
                _, _, weights = self.model.encoder(torch.tensor([ids], device=self.device), need_weights=True)
                if weights and weights[0] is not None:
                    words = [self.display(i) for i in ids]
                    examples.append(AttentionExample(text[:40], {"self": AttentionMap([w[0].float().cpu().numpy() for w in weights], words, words)}))
        return examples

"""Translation: trains whatever encoder-decoder the config composes and evaluates it with BLEU,
chrF and exact match. Decoding and the user-facing API are the :class:`Translator`'s.

Everything needed to rebuild the model and read its output — the three component specs and both
vocabularies and tokenizers — is a hyperparameter, so a checkpoint alone can translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import PAD_ID, Vocab
from attnlab.metrics import CorpusBLEU, CorpusChrF, ExactMatch, bleu_by_length, bleu_signature
from attnlab.models.factory import build_seq2seq
from attnlab.tasks.base import AttentionExample, AttentionMap, Curve, Evaluation, Task, plain
from attnlab.tasks.shapes import TOKENIZER, VOCAB
from attnlab.tasks.translator import ATTENTION_AXES, Translator, decoding_settings


@dataclass
class EvalRecord:
    index: int  # position in the split: orders the hypotheses gathered from every rank
    source: str
    hypothesis: str
    reference: str
    nll: float  # summed over the reference's tokens
    tokens: int


class TranslationTask(Task):
    name = "translation"
    monitor = "val/bleu"
    prediction_name = "hypotheses"
    alignment_kind = "cross"
    curve_axes = {"bleu_by_length": ("min_len", "bleu")}
    figure_keys = tuple(f"attention/{kind}/example_0" for kind in ATTENTION_AXES)
    example_identity = ("source", "reference")
    example_measures = {"bleu": "bleu", "chrf": "chrf", "exact_match": "exact_match", "loss": "mean_nll", "ppl": "perplexity"}
    report_columns = [
        ("val BLEU", "val/bleu", True),
        ("test BLEU", "test/bleu", True),
        ("test chrF", "test/chrf", True),
        ("test exact %", "test/exact_match", True),
    ]
    batch_key = "src"
    # what comes from the data: the constructor's arguments, and what eval.py gives the data back
    data_fields = {
        "src_vocab": lambda dm: dm.src_vocab.tokens,
        "tgt_vocab": lambda dm: dm.tgt_vocab.tokens,
        "src_tokenizer": lambda dm: dm.src_tokenizer.spec,
        "tgt_tokenizer": lambda dm: dm.tgt_tokenizer.spec,
    }
    checkpoint_keys = ("src_vocab", "tgt_vocab")
    hparam_schema = {
        "src_vocab": VOCAB,
        "tgt_vocab": VOCAB,
        "src_tokenizer": TOKENIZER,
        "tgt_tokenizer": TOKENIZER,
        "label_smoothing": "number",
        "max_len_a": "number",
        "max_len_b": "int",
        "decoding": {"map": "scalar"},
        "length_bucket": {"optional": "int"},
    }
    data_kinds = ("translation",)

    def __init__(
        self,
        arch: Mapping[str, Any],
        attention: Mapping[str, Any],
        pos_enc: Mapping[str, Any],
        src_vocab: Sequence[str],
        tgt_vocab: Sequence[str],
        src_tokenizer: Union[str, Mapping[str, str]] = "word",  # a Tokenizer spec: kind, or bpe with its model
        tgt_tokenizer: Union[str, Mapping[str, str]] = "word",
        label_smoothing: float = 0.1,
        max_len_a: float = 2.0,
        max_len_b: int = 10,
        decoding: Optional[Mapping[str, Any]] = None,
        length_bucket: int = 5,
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
            src_vocab=list(src_vocab),
            tgt_vocab=list(tgt_vocab),
            src_tokenizer=plain(src_tokenizer),
            tgt_tokenizer=plain(tgt_tokenizer),
            label_smoothing=label_smoothing,
            max_len_a=max_len_a,
            max_len_b=max_len_b,
            decoding=decoding_settings(plain(decoding)),
            length_bucket=length_bucket,
        )
        src_vocab, tgt_vocab = Vocab(self.hparams.src_vocab), Vocab(self.hparams.tgt_vocab)
        self.model = build_seq2seq(self.hparams.arch, self.hparams.attention, self.hparams.pos_enc, len(src_vocab), len(tgt_vocab), PAD_ID)
        if compile:
            self.model.compile()  # in place: parameter names (and checkpoints) stay the same
        self.translator = Translator(
            self.model,
            src_vocab,
            tgt_vocab,
            Tokenizer.from_spec(self.hparams.src_tokenizer),
            Tokenizer.from_spec(self.hparams.tgt_tokenizer),
            max_len_a,
            max_len_b,
        )
        self.test_decoding = self.hparams.decoding  # validation decodes greedily; the test with this
        self.loss_metric = MeanMetric()
        self.bleu, self.chrf, self.exact_match = CorpusBLEU(), CorpusChrF(), ExactMatch()
        self._records: List[EvalRecord] = []

    # -- training ---------------------------------------------------------------------------
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in)[0]

    def loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Teacher-forced, label-smoothed cross-entropy per target token."""
        tgt = batch["tgt"]
        logits = self(batch["src"], tgt[:, :-1])  # (B, T, V)
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1), ignore_index=PAD_ID, label_smoothing=self.hparams.label_smoothing
        )

    def batch_tokens(self, batch: Dict[str, Any]) -> int:
        """Source tokens plus target tokens the decoder predicts (no padding)."""
        return int(batch["src"].ne(PAD_ID).sum()) + int(batch["tgt"][:, 1:].ne(PAD_ID).sum())

    # -- evaluation -------------------------------------------------------------------------
    # Each rank updates the metrics with its own examples (torchmetrics sums them across ranks)
    # and keeps one record per example; the records of all ranks are gathered for the texts that
    # need the whole split in order (the hypotheses file, BLEU by length, dashboard examples).
    def reset_evaluation(self) -> None:
        for metric in (self.loss_metric, self.bleu, self.chrf, self.exact_match):
            metric.reset()
        self._records = []

    def evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        tgt = batch["tgt"]
        logits = self(batch["src"], tgt[:, :-1])  # (B, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), tgt[:, 1:], ignore_index=PAD_ID, reduction="none")  # (B, T)
        row_tokens = tgt[:, 1:].ne(PAD_ID).sum(dim=1)  # (B,)
        row_nll = nll.sum(dim=1)  # (B,)
        tokens = row_tokens.sum()
        self.loss_metric.update(nll.sum() / tokens.clamp(min=1), weight=tokens)
        decoding = self.test_decoding if self.trainer.testing else None
        hypotheses = self.translator.translate_ids(batch["src"], decoding)
        references = batch["tgt_text"]
        for metric in (self.bleu, self.chrf, self.exact_match):
            metric.update(hypotheses, references)
        for i, index in enumerate(batch["index"].tolist()):
            self._records.append(EvalRecord(index, batch["src_text"][i], hypotheses[i], references[i], float(row_nll[i]), int(row_tokens[i])))

    def evaluation_end(self, split: str) -> Evaluation:
        records = sorted(self.gather_objects(self._records), key=lambda r: r.index)
        loss = float(self.loss_metric.compute())
        sources = [r.source for r in records]
        hypotheses = [r.hypothesis for r in records]
        references = [r.reference for r in records]
        metrics = {
            f"{split}/loss": loss,
            f"{split}/ppl": float(torch.exp(torch.tensor(loss))),
            f"{split}/bleu": float(self.bleu.compute()),
            f"{split}/chrf": float(self.chrf.compute()),
            f"{split}/exact_match": float(self.exact_match.compute()),
        }
        by_length = bleu_by_length(sources, hypotheses, references, self.hparams.get("length_bucket", 5))
        return Evaluation(
            split=split,
            metrics=metrics,
            predictions=hypotheses,
            inputs=sources,
            examples=[{"source": r.source, "hypothesis": r.hypothesis, "reference": r.reference} for r in records],
            curves={"bleu_by_length": Curve(by_length, *self.curve_axes["bleu_by_length"], title=f"{split} BLEU by source length")},
            records=[
                {"id": r.index, "source": r.source, "reference": r.reference, "hypothesis": r.hypothesis, "nll": r.nll, "total": r.tokens}
                for r in records
            ],
        )

    def result_extras(self) -> Dict[str, Any]:
        return {"bleu_signature": bleu_signature()}  # BLEU is on detokenized text: say exactly which BLEU

    def attention_examples(self, inputs: Sequence[str]) -> List[AttentionExample]:
        examples = []
        for example in self.translator.attention_maps(inputs):
            maps = {}
            for kind, layers in example["weights"].items():
                rows, cols = ATTENTION_AXES[kind]
                maps[kind] = AttentionMap(layers, example[rows], example[cols])
            examples.append(AttentionExample(example["hypothesis"], maps))
        return examples

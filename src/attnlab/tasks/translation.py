"""Translation as a LightningModule: trains whatever Seq2Seq the config composes.

Everything needed to rebuild the model and read its output — the three component configs and
both vocabularies — is a hyperparameter, so a checkpoint alone can translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Tokenizer, Vocab
from attnlab.decoding import beam_search, greedy_decode
from attnlab.metrics import bleu_by_length, translation_scores
from attnlab.tasks.builders import build_seq2seq
from attnlab.tasks.schedules import lr_multiplier


DEFAULT_DECODING = {"strategy": "greedy", "beam_size": 5, "alpha": 0.6}
STRATEGIES = ("greedy", "beam")

# rows (queries) and columns (keys) of each kind of attention: the tokens that label them
ATTENTION_AXES = {"cross": ("output", "source"), "encoder_self": ("source", "source"), "decoder_self": ("output", "input")}


@dataclass
class EvalRecord:
    index: int  # position in the split: the key that merges ranks and drops sampler padding
    source: str
    hypothesis: str
    reference: str
    nll: float  # summed over the reference's tokens
    tokens: int


def decoding_settings(decoding: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``decoding`` over the defaults, with its strategy checked."""
    settings = {**DEFAULT_DECODING, **(decoding or {})}
    if settings["strategy"] not in STRATEGIES:
        raise ValueError(f"task.decoding.strategy must be one of {', '.join(STRATEGIES)}; got {settings['strategy']!r}")
    return settings


def _plain(value: Any) -> Any:
    """DictConfig -> dict, so hyperparameters load with ``weights_only=True``."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class TranslationTask(L.LightningModule):
    def __init__(
        self,
        arch: Mapping[str, Any],
        attention: Mapping[str, Any],
        pos_enc: Mapping[str, Any],
        src_vocab: Sequence[str],
        tgt_vocab: Sequence[str],
        src_tokenizer: Union[str, Mapping[str, str]] = "word",  # a Tokenizer spec: kind, or bpe with its model
        tgt_tokenizer: Union[str, Mapping[str, str]] = "word",
        optimizer: Optional[Mapping[str, Any]] = None,
        scheduler: Optional[Mapping[str, Any]] = None,
        label_smoothing: float = 0.1,
        max_len_a: float = 2.0,
        max_len_b: int = 10,
        decoding: Optional[Mapping[str, Any]] = None,
        data: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__()
        self.save_hyperparameters(
            {
                "arch": _plain(arch),
                "attention": _plain(attention),
                "pos_enc": _plain(pos_enc),
                "src_vocab": list(src_vocab),
                "tgt_vocab": list(tgt_vocab),
                "src_tokenizer": _plain(src_tokenizer),
                "tgt_tokenizer": _plain(tgt_tokenizer),
                "optimizer": _plain(optimizer) or {},
                "scheduler": _plain(scheduler) or {},
                "label_smoothing": label_smoothing,
                "max_len_a": max_len_a,
                "max_len_b": max_len_b,
                "decoding": decoding_settings(_plain(decoding)),
                "data": _plain(data),  # the data config, so eval.py can rebuild the splits
            },
            logger=False,  # the pipeline logs the experiment's config itself; vocabularies stay out of W&B
        )
        self.src_vocab = Vocab(src_vocab)
        self.tgt_vocab = Vocab(tgt_vocab)
        self.src_tokenizer = Tokenizer.from_spec(self.hparams.src_tokenizer)
        self.tgt_tokenizer = Tokenizer.from_spec(self.hparams.tgt_tokenizer)
        self.model = build_seq2seq(self.hparams.arch, self.hparams.attention, self.hparams.pos_enc, len(self.src_vocab), len(self.tgt_vocab), PAD_ID)
        self._reset_outputs()
        self.output_dir: Optional[str] = None  # where test hypotheses go; the trainer's root dir if unset
        # the latest evaluation per stage ("val", "test"): texts and BLEU by length, for callbacks
        self.last_eval: Dict[str, Dict[str, Any]] = {}

    # -- training ---------------------------------------------------------------------------
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in)[0]

    def _token_loss(self, batch: Dict[str, Any], label_smoothing: float) -> torch.Tensor:
        tgt = batch["tgt"]
        logits = self(batch["src"], tgt[:, :-1])  # (B, T, V)
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1), ignore_index=PAD_ID, label_smoothing=label_smoothing
        )

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._token_loss(batch, self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["src"].size(0))
        return loss

    def configure_optimizers(self):
        opt_cfg = {"lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 0.01, **self.hparams.optimizer}
        optimizer = torch.optim.AdamW(self.parameters(), lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]), weight_decay=opt_cfg["weight_decay"])
        sched_cfg = {"name": "inverse_sqrt", "warmup_steps": 200, "min_ratio": 0.0, **self.hparams.scheduler}
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        lam = lr_multiplier(sched_cfg["name"], sched_cfg["warmup_steps"], total, sched_cfg["min_ratio"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lam)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- decoding ---------------------------------------------------------------------------
    def max_output_len(self, src: torch.Tensor) -> torch.Tensor:
        """Per sentence (B,): max_len_a x its own source length + max_len_b (never the batch's)."""
        lengths = src.ne(PAD_ID).sum(dim=1)
        return (self.hparams.max_len_a * lengths + self.hparams.max_len_b).long()

    @torch.no_grad()
    def translate_batch(self, src: torch.Tensor, decoding: Optional[Mapping[str, Any]] = None) -> List[str]:
        """Decode (B, S) source ids; ``decoding`` (strategy, beam_size, alpha) defaults to greedy."""
        decoding = decoding_settings(decoding)
        if decoding["strategy"] == "beam":
            beams = beam_search(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), decoding["beam_size"], decoding["alpha"])
            rows = [hyps[0].tokens for hyps in beams]
        else:
            rows = greedy_decode(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src))[0].tolist()
        return [self.tgt_tokenizer.detokenize(self.tgt_vocab.decode(row)) for row in rows]

    def encode_sources(self, sentences: Sequence[str]) -> torch.Tensor:
        """Raw sentences -> padded ids (B, S) on the module's device, EOS-terminated."""
        ids = [self.src_vocab.encode(self.src_tokenizer.tokenize(s)) + [EOS_ID] for s in sentences]
        src = torch.full((len(ids), max(map(len, ids))), PAD_ID, dtype=torch.long, device=self.device)
        for i, row in enumerate(ids):
            src[i, : len(row)] = torch.tensor(row)
        return src

    def _in_eval_mode(self, fn):
        was_training = self.training
        self.eval()
        try:
            return fn()
        finally:
            self.train(was_training)

    def translate(self, sentences: Sequence[str], decoding: Optional[Mapping[str, Any]] = None) -> List[str]:
        """Translate raw source sentences (for use outside a Trainer)."""
        return self._in_eval_mode(lambda: self.translate_batch(self.encode_sources(sentences), decoding))

    def translate_n_best(self, sentences: Sequence[str], beam_size: int, n_best: int, alpha: float = 0.6) -> List[List[tuple]]:
        """Per sentence, the ``n_best`` beam-search translations as (text, score, log-probability)."""

        def run():
            src = self.encode_sources(sentences)
            with torch.no_grad():
                return beam_search(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), beam_size, alpha, n_best)

        beams = self._in_eval_mode(run)
        return [[(self.tgt_tokenizer.detokenize(self.tgt_vocab.decode(h.tokens)), h.score, h.log_prob) for h in hyps] for hyps in beams]

    @torch.no_grad()
    def attention_maps(self, sentences: Sequence[str]) -> List[Dict[str, Any]]:
        """Greedy translations with every attention matrix, one dict per sentence.

        Each: ``source`` and ``output`` tokens (with ``<eos>``), ``hypothesis`` text and
        ``weights``: kind (``cross``, ``encoder_self``, ``decoder_self``) -> per layer (H, T, S)
        arrays cropped to the sentence's own tokens.
        """

        def run():
            src = self.encode_sources(sentences)
            tokens, weights = greedy_decode(self.model, src, BOS_ID, EOS_ID, self.max_output_len(src), need_weights=True)
            return src, tokens, weights

        src, tokens, weights = self._in_eval_mode(run)
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
            words = self.tgt_vocab.decode(generated)
            lengths = {"source": len(source), "output": len(output), "input": len(output)}
            per_kind = {}
            for kind, layers in weights.items():
                rows, cols = ATTENTION_AXES[kind]
                per_kind[kind] = [w[i, :, : lengths[rows], : lengths[cols]].float().cpu().numpy() for w in layers]
            maps.append(
                {"source": source, "output": output, "input": ["<bos>"] + output[:-1], "hypothesis": self.tgt_tokenizer.detokenize(words), "weights": per_kind}
            )
        return maps

    # -- evaluation -------------------------------------------------------------------------
    # Every evaluated example leaves one record; at the epoch's end the records of all ranks are
    # gathered and de-duplicated by dataset index (a DistributedSampler pads the last batches
    # with repeats), so loss, BLEU and the hypotheses file match a single-process run exactly.
    def _eval_step(self, batch: Dict[str, Any], decoding: Optional[Mapping[str, Any]] = None) -> None:
        tgt = batch["tgt"]
        logits = self(batch["src"], tgt[:, :-1])  # (B, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), tgt[:, 1:], ignore_index=PAD_ID, reduction="none")  # (B, T)
        nll_sums = nll.sum(dim=1).tolist()
        token_counts = tgt[:, 1:].ne(PAD_ID).sum(dim=1).tolist()
        hypotheses = self.translate_batch(batch["src"], decoding)
        for i, index in enumerate(batch["index"].tolist()):
            self._records.append(EvalRecord(index, batch["src_text"][i], hypotheses[i], batch["tgt_text"][i], nll_sums[i], token_counts[i]))

    def _gathered_records(self) -> List["EvalRecord"]:
        records = self._records
        if self._trainer is not None and self.trainer.world_size > 1:
            everyone: List[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(everyone, records)
            records = [r for rank_records in everyone for r in rank_records]
        unique = {r.index: r for r in records}
        return [unique[i] for i in sorted(unique)]

    def _eval_epoch_end(self, stage: str) -> List["EvalRecord"]:
        records = self._gathered_records()
        sources = [r.source for r in records]
        hypotheses = [r.hypothesis for r in records]
        references = [r.reference for r in records]
        nll = torch.tensor(sum(r.nll for r in records) / max(1, sum(r.tokens for r in records)))
        scores = translation_scores(hypotheses, references)
        self.last_eval[stage] = {
            "sources": sources,
            "hypotheses": hypotheses,
            "references": references,
            "bleu_by_length": bleu_by_length(sources, hypotheses, references),
        }
        metrics = {f"{stage}/loss": nll, f"{stage}/ppl": torch.exp(nll)}
        metrics.update({f"{stage}/{k}": torch.tensor(v) for k, v in scores.items()})
        # every rank holds the same gathered values; sync_dist only confirms them
        self.log(f"{stage}/bleu", metrics.pop(f"{stage}/bleu"), prog_bar=True, sync_dist=True)
        self.log_dict(metrics, sync_dist=True)
        return records

    def _reset_outputs(self) -> None:
        self._records: List[EvalRecord] = []

    def on_validation_epoch_start(self) -> None:
        self._reset_outputs()

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")
        self._reset_outputs()

    def on_test_epoch_start(self) -> None:
        self._reset_outputs()

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.hparams.decoding)  # validation stays greedy; the test uses the configured decoder

    def on_test_epoch_end(self) -> None:
        records = self._eval_epoch_end("test")
        if self.trainer.is_global_zero:
            out_dir = Path(self.output_dir or self.trainer.default_root_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "test_hypotheses.txt").write_text("".join(r.hypothesis + "\n" for r in records), encoding="utf-8")
        self._reset_outputs()

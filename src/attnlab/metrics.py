"""Translation metrics: corpus BLEU and chrF (sacrebleu, on detokenized strings), exact match,
and BLEU by source length (Bahdanau et al. 2015, Fig. 2).

The corpus metrics are ``torchmetrics`` objects, so their state is summed across batches and DDP
ranks the way every Lightning user expects. Their state is sacrebleu's own sufficient statistics
(n-gram matches and totals, lengths), so the score equals ``sacrebleu.corpus_bleu`` /
``corpus_chrf`` on the same sentences exactly, whichever way they were split into batches or ranks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import sacrebleu
import torch
from torchmetrics import Metric


class SacreCorpusMetric(Metric):
    """A sacrebleu corpus metric whose per-sentence statistics are summed as metric state."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, scorer: sacrebleu.metrics.base.Metric, **kwargs: Any):
        super().__init__(**kwargs)
        self.scorer = scorer
        width = len(scorer._extract_corpus_statistics(["a"], [["a"]])[0])
        self.add_state("stats", default=torch.zeros(width, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
        if hypotheses:
            per_sentence = self.scorer._extract_corpus_statistics(list(hypotheses), [list(references)])
            self.stats += torch.tensor(per_sentence, dtype=torch.int64).sum(dim=0)

    def compute(self) -> torch.Tensor:
        if not bool(self.stats.any()):
            return torch.tensor(0.0, dtype=torch.float64)
        score = self.scorer._compute_score_from_stats([int(v) for v in self.stats.tolist()]).score
        return torch.tensor(score, dtype=torch.float64)

    def signature(self) -> str:
        return str(self.scorer.get_signature())


class CorpusBLEU(SacreCorpusMetric):
    """sacrebleu's default corpus BLEU (13a tokenisation, exponential smoothing), 0-100."""

    def __init__(self, **kwargs: Any):
        super().__init__(sacrebleu.BLEU(), **kwargs)


class CorpusChrF(SacreCorpusMetric):
    """sacrebleu's default chrF (character 6-grams, beta 2), 0-100."""

    def __init__(self, **kwargs: Any):
        super().__init__(sacrebleu.CHRF(), **kwargs)


class ExactMatch(Metric):
    """Percent of hypotheses identical to their reference."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("matches", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        self.matches += sum(h == r for h, r in zip(hypotheses, references))
        self.total += len(references)

    def compute(self) -> torch.Tensor:
        total = int(self.total)
        return torch.tensor(100.0 * int(self.matches) / total if total else 0.0, dtype=torch.float64)


def bleu_signature() -> str:
    """sacrebleu's signature of the BLEU computed by :class:`CorpusBLEU`."""
    return CorpusBLEU().signature()


def length_bucket(length: int, width: int = 5) -> str:
    """1-5, 6-10, ... for width 5; 1, 2, ... for width 1."""
    lo = (max(length, 1) - 1) // width * width + 1
    return f"{lo}-{lo + width - 1}" if width > 1 else str(lo)


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str], width: int = 5) -> List[Dict[str, Any]]:
    """Corpus BLEU and exact match per source-length bucket (in words), shortest bucket first.

    The Bahdanau et al. 2015 Fig. 2 view: does quality hold up as sentences get longer?
    Short buckets may have no 4-grams at all, so n-gram orders with no matches are dropped
    (sacrebleu's effective order) instead of zeroing the score.
    """
    bleu = sacrebleu.BLEU(effective_order=True)
    groups: Dict[int, List[int]] = {}
    for i, src in enumerate(sources):
        groups.setdefault((max(len(src.split()), 1) - 1) // width, []).append(i)
    rows = []
    for key in sorted(groups):
        idx = groups[key]
        rows.append(
            {
                "bucket": length_bucket(key * width + 1, width),
                "min_len": key * width + 1,
                "n": len(idx),
                "bleu": bleu.corpus_score([hypotheses[i] for i in idx], [[references[i] for i in idx]]).score,
                "exact_match": 100.0 * sum(hypotheses[i] == references[i] for i in idx) / len(idx),
            }
        )
    return rows


class PositionSums(Metric):
    """Per position in a block, sums of a language model's negative log-likelihood, its tokens and
    their bytes: the loss as a function of how much context a prediction had."""

    full_state_update = False

    def __init__(self, size: int, **kwargs: Any):
        super().__init__(**kwargs)
        for name in ("nll", "tokens", "bytes"):
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, nll: torch.Tensor, nbytes: torch.Tensor) -> None:
        """``nll`` and ``nbytes``: (B, L) per predicted token, L at most ``size``."""
        length = nll.size(1)
        self.nll[:length] += nll.double().sum(dim=0)
        self.tokens[:length] += nll.size(0)
        self.bytes[:length] += nbytes.double().sum(dim=0)

    def compute(self) -> Dict[str, torch.Tensor]:
        return {"nll": self.nll, "tokens": self.tokens, "bytes": self.bytes}

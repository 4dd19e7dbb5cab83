"""Corpus-level translation metrics on detokenized strings (sacrebleu)."""

from __future__ import annotations

from typing import Dict, Sequence

import sacrebleu


def translation_scores(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, float]:
    """BLEU and chrF (0-100, sacrebleu defaults) and exact match (percent of identical strings)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        return {"bleu": 0.0, "chrf": 0.0, "exact_match": 0.0}
    return {
        "bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
        "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score,
        "exact_match": 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(references),
    }


def bleu_signature() -> str:
    return str(sacrebleu.BLEU().get_signature())

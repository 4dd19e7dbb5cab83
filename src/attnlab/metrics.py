"""Corpus-level translation metrics on detokenized strings (sacrebleu)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

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
    """sacrebleu's signature of the BLEU computed by ``translation_scores``."""
    bleu = sacrebleu.BLEU()
    bleu.corpus_score(["a"], [["a"]])  # the signature counts references, known after a score
    return str(bleu.get_signature())


def length_bucket(length: int, width: int = 5) -> str:
    """1-5, 6-10, ... for width 5."""
    lo = (max(length, 1) - 1) // width * width + 1
    return f"{lo}-{lo + width - 1}"


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str], width: int = 5) -> List[Dict[str, Any]]:
    """Corpus BLEU per source-length bucket (in words), shortest bucket first.

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
            }
        )
    return rows

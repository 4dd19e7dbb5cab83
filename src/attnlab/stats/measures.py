"""How each metric in metrics.json is computed again from per-example rows, so intervals and tests
can resample the examples after the fact.

Every measure is a corpus statistic of summed per-example statistics: ``stats(rows)`` gives an
(N, D) array, one row of D numbers per example, and ``score(sums)`` turns (R, D) sums (one per
resample) into R scores. Resampling the test set is then a matrix product of resample counts and
the statistics. BLEU and chrF use sacrebleu's own sentence statistics and its own scoring from
them, so a score here equals ``sacrebleu.corpus_bleu`` on the same sentences exactly.

The fields a measure reads from a row (see :mod:`attnlab.stats.examples`):

* ``hypothesis``, ``reference`` (translation);
* ``correct``, ``total``: predictions right out of predictions made (a classifier: 0/1 of 1; a
  masked LM: of the masked tokens);
* ``nll``, ``total``: summed negative log-likelihood over ``total`` predicted tokens, ``bytes``
  of text they cover (bits per byte);
* ``label``, ``prediction`` (macro-F1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Measure:
    name: str
    fields: Tuple[str, ...]  # what it reads from each row
    stats: Callable[[Sequence[Dict[str, Any]]], np.ndarray]  # rows -> (N, D)
    score: Callable[[np.ndarray], np.ndarray]  # (R, D) sums -> (R,)


def _column(rows: Sequence[Dict[str, Any]], *names: str) -> np.ndarray:
    return np.array([[float(r[n]) for n in names] for r in rows], dtype=np.float64).reshape(len(rows), len(names))


def _ratio(sums: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[:, 1] > 0, scale * sums[:, 0] / np.maximum(sums[:, 1], 1e-300), np.nan)


def _sacrebleu(kind: str) -> Measure:
    import sacrebleu

    metric = sacrebleu.BLEU() if kind == "bleu" else sacrebleu.CHRF()

    def stats(rows):
        hyps = [r["hypothesis"] for r in rows]
        return np.array(metric._extract_corpus_statistics(hyps, [[r["reference"] for r in rows]]), dtype=np.float64)

    def score(sums):
        return np.array([metric._compute_score_from_stats([int(round(v)) for v in row]).score for row in sums])

    return Measure(kind, ("hypothesis", "reference"), stats, score)


def _exact_match() -> Measure:
    def stats(rows):
        return np.array([[float(r["hypothesis"] == r["reference"]), 1.0] for r in rows]).reshape(len(rows), 2)

    return Measure("exact_match", ("hypothesis", "reference"), stats, lambda s: _ratio(s, 100.0))


def _macro_f1() -> Measure:
    """Macro-F1 over the classes that occur as a label or a prediction (torchmetrics leaves a
    class out of the mean when it has no true positive, false positive or false negative)."""

    def stats(rows):
        classes = sorted({str(r["label"]) for r in rows} | {str(r["prediction"]) for r in rows})
        index = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(rows), 3 * len(classes)))  # per class: tp, fp, fn
        for i, r in enumerate(rows):
            label, predicted = index[str(r["label"])], index[str(r["prediction"])]
            if label == predicted:
                out[i, 3 * label] = 1
            else:
                out[i, 3 * predicted + 1] = 1
                out[i, 3 * label + 2] = 1
        return out

    def score(sums):
        tp, fp, fn = sums[:, 0::3], sums[:, 1::3], sums[:, 2::3]
        denominator = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1e-300), np.nan)
        return np.nanmean(f1, axis=1) if f1.shape[1] else np.full(len(sums), np.nan)

    return Measure("macro_f1", ("label", "prediction"), stats, score)


_BUILDERS: Dict[str, Callable[[], Measure]] = {
    "bleu": lambda: _sacrebleu("bleu"),
    "chrf": lambda: _sacrebleu("chrf"),
    "exact_match": _exact_match,
    "accuracy": lambda: Measure("accuracy", ("correct", "total"), lambda rows: _column(rows, "correct", "total"), _ratio),
    "macro_f1": _macro_f1,
    "mean_nll": lambda: Measure("mean_nll", ("nll", "total"), lambda rows: _column(rows, "nll", "total"), _ratio),
    "perplexity": lambda: Measure("perplexity", ("nll", "total"), lambda rows: _column(rows, "nll", "total"), lambda s: np.exp(np.minimum(_ratio(s), 50.0))),
    "bits_per_byte": lambda: Measure("bits_per_byte", ("nll", "bytes"), lambda rows: _column(rows, "nll", "bytes"), lambda s: _ratio(s, 1 / math.log(2))),
}
NAMES = tuple(_BUILDERS)
_cache: Dict[str, Measure] = {}


def measure(name: str) -> Measure:
    """The measure of this name; ValueError naming the ones there are."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown measure {name!r} (one of {', '.join(NAMES)})")
    if name not in _cache:
        _cache[name] = _BUILDERS[name]()
    return _cache[name]


def score(name: str, rows: List[Dict[str, Any]]) -> float:
    """The measure on all the rows: what the run's metrics.json says for it."""
    m = measure(name)
    return float(m.score(m.stats(rows).sum(axis=0, keepdims=True))[0])

"""Configurations against a baseline, metric by metric: the paired difference, its interval, a
p-value corrected for the number of comparisons (Holm, within each metric), a verdict, and for a
difference that is not distinguishable, roughly how many examples or seeds would tell.

BLEU and chrF take sacrebleu's paired-bootstrap p-value between two single runs. Its test counts
resampled |differences| (centred on their mean) beyond the observed |difference|, which reads
like a one-sided test: with no true difference it rejects about twice as often as its level
(benchmarks/calibration.py, 2,000 draws: 0.104 at 0.05, against 0.038 for the two-sided percentile
test; tests/test_significance.py checks both). So a
BLEU or chrF difference is called significant only when sacrebleu's corrected p is below 0.05 and
the 95 % interval of the difference excludes 0 as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from attnlab.stats.compare import NotTestable, Run, difference
from attnlab.stats.resampling import ALPHA, Difference, holm, needed

Metric = Tuple[str, str, bool]  # heading, key, higher is better


@dataclass
class Comparison:
    config: str
    metric: Metric
    diff: Optional[Difference] = None
    why: Optional[str] = None  # why it could not be tested
    p_holm: Optional[float] = None
    significant: bool = False

    @property
    def verdict(self) -> str:
        if self.diff is None:
            return "not tested"
        if not self.significant:
            return "not distinguishable"
        higher = self.metric[2]
        return "better" if (self.diff.estimate > 0) == higher else "worse"


def against_baseline(groups: Dict[str, List[Run]], baseline: str, metrics: Sequence[Metric], resamples: int = 1000, seed: int = 12345) -> List[Comparison]:
    """Every configuration but ``baseline`` minus ``baseline``, on each metric."""
    out: List[Comparison] = []
    for metric in metrics:
        family: List[Comparison] = []
        for name, runs in groups.items():
            if name == baseline:
                continue
            comparison = Comparison(name, metric)
            try:
                comparison.diff = difference(runs, groups[baseline], metric[1], resamples, seed)
            except NotTestable as exc:
                comparison.why = str(exc)
            family.append(comparison)
        tested = [c for c in family if c.diff is not None]
        for c, adjusted in zip(tested, holm([c.diff.p for c in tested])):
            c.p_holm = adjusted
            excludes_zero = c.diff.low > 0 or c.diff.high < 0
            sacrebleu_p = c.diff.method.startswith("sacrebleu")
            c.significant = adjusted < ALPHA and (excludes_zero or not sacrebleu_p)
        out += family
    return out


def to_detect(diff: Difference) -> str:
    """Roughly what would detect this difference: more test examples, or more seeds."""
    if diff.estimate == 0:
        return "no difference observed"
    sizes = needed(diff)
    parts = []
    if sizes["examples"] is not None and sizes["examples"] <= diff.examples:
        return "borderline: about as many examples and seeds as now (the correction for the comparisons decides)"
    if sizes["examples"] is not None:
        parts.append(f"≈ {sizes['examples']:,} test examples ({sizes['examples'] / diff.examples:.1f}× these)")
    elif diff.seed_var > 0:
        parts.append("not more test examples alone (the seeds' spread is too wide)")
    if sizes["seeds"] is not None:
        parts.append(f"≈ {sizes['seeds']} seeds")
    elif diff.seeds < 2:
        parts.append("seeds: run ≥ 2 to estimate")
    else:
        parts.append("not more seeds alone (this test set is too small)")
    return " or ".join(parts)


def p_text(p: Optional[float]) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


HOW_TO_READ = (
    "How to read this: each row is a configuration minus the baseline on the same test examples, with its "
    "95 % interval. Between single runs the interval is a paired bootstrap's: every resample draws the same "
    "test examples for both. With seeds it is a t-interval on the difference of the seed means (seed s against "
    "seed s where both ran it) whose variance adds the test sample's from the same paired bootstrap, so it "
    "holds the noise of the seeds and of the test sample. p is two-sided (for BLEU and chrF between single "
    "runs, sacrebleu's `--paired-bs`); p (Holm) corrects it for the number of configurations compared on that "
    "metric. **better** / **worse** means significant at 0.05 after the correction; *not distinguishable* means "
    "this sweep cannot tell the difference from noise: it is not evidence that there is none. For those, the "
    "last column estimates how many test examples (seeds fixed) or seeds (test set fixed) would detect the "
    "observed difference with 80 % power, from the spread the resamples measured."
)

"""Intervals and paired tests over seeds and test examples.

* One configuration: over seeds, the mean with a 95 % t-interval (Reimers & Gurevych 2017) when
  it has two or more; for a single run, a percentile bootstrap over the test examples.
* Two single runs on the same test set: a paired bootstrap (Koehn 2004; Berg-Kirkpatrick et al.
  2012): every resample draws the same examples for both. The p-value is two-sided: twice the
  share of resampled differences on the far side of zero (the interval's own test: p < 0.05
  exactly when the 95 % percentile interval excludes 0).
* Two configurations with seeds: a t-test on the difference of the seed means (paired seed by
  seed where both ran the same seeds, Welch's otherwise) whose variance adds the test sample's,
  measured by the same paired bootstrap: both sources of noise.
* Many configurations against one baseline: Holm's step-down correction.
* A difference that is not distinguishable: how many test examples or seeds would detect it with
  80 % power at 0.05, from the spread the resamples measured (the normal approximation).

Statistics are per-example sums (:mod:`attnlab.stats.measures`): a resample is a vector of
counts, and its scores are one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.80
Score = Callable[[np.ndarray], np.ndarray]  # (R, D) summed statistics -> (R,) scores


@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    method: str  # how it was computed, in words: "t over 3 seeds", "bootstrap over 1,000 examples"


@dataclass
class Difference:
    """A configuration minus its baseline on one metric."""

    estimate: float  # mean over seed pairs of the full-test-set differences
    low: float
    high: float
    p: float
    method: str
    se_examples: float  # the spread of the difference that comes from the test sample alone
    sd_seeds: Optional[float]  # per-seed differences' standard deviation (None with one seed)
    examples: int
    seeds: int
    seed_var: float = 0.0  # the seeds' share of the estimate's variance (0 with one run a side)


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, n): how often each example is drawn in each of R bootstrap resamples."""
    draws = rng.integers(0, n, size=(resamples, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and Student-t interval of per-seed scores (two or more)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError("a t-interval needs at least two values")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return Interval(float(x.mean()), float(x.mean() - half), float(x.mean() + half), f"t over {n} seeds")


def bootstrap_interval(stats: np.ndarray, score: Score, resamples: int = 1000, seed: int = 12345, level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of one run's score over its test examples (stats: (N, D))."""
    rng = np.random.default_rng(seed)
    scores = score(resample_counts(len(stats), resamples, rng) @ stats)
    low, high = np.nanpercentile(scores, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(score(stats.sum(axis=0, keepdims=True))[0]), float(low), float(high), f"bootstrap over {len(stats):,} examples")


def two_sided_p(samples: np.ndarray) -> float:
    """Twice the share of resampled differences at or beyond zero on the side away from the
    estimate, with the +1 that keeps a p-value from a finite number of resamples from being 0."""
    samples = samples[~np.isnan(samples)]
    below, above = int((samples <= 0).sum()), int((samples >= 0).sum())
    return min(1.0, 2.0 * (min(below, above) + 1) / (len(samples) + 1))


def paired_bootstrap(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    score: Score,
    resamples: int = 1000,
    seed: int = 12345,
    paired_seeds: bool = True,
    level: float = LEVEL,
) -> Difference:
    """``a`` minus ``b``: each a list of per-run statistics (N, D) on the same N examples, one run
    a seed; with ``paired_seeds`` a[i] and b[i] share a seed.

    One run a side: the paired percentile bootstrap over the examples. Several seeds: the
    difference of the seed means, with a Student-t interval whose variance is the seeds' (the
    per-seed differences' variance over k, or Welch's for unpaired seeds) plus the test sample's
    (the paired bootstrap's variance of the seed-averaged difference, seeds held fixed). Drawing
    seed pairs in the bootstrap instead would understate the seeds' share with three seeds
    (benchmarks/calibration.py: 10-15 % false positives where seeds dominate); this stays at or
    under the level, conservative where the test sample dominates.
    """
    from scipy import stats as sps

    if paired_seeds and len(a) != len(b):
        raise ValueError(f"paired seeds need as many runs on each side ({len(a)} and {len(b)})")
    n = len(a[0])
    rng = np.random.default_rng(seed)
    counts = resample_counts(n, resamples, rng)  # (R, N): one draw of examples, shared by every run
    score_a = np.stack([score(counts @ s) for s in a])  # (kA, R)
    score_b = np.stack([score(counts @ s) for s in b])  # (kB, R)
    full_a = np.array([score(s.sum(axis=0, keepdims=True))[0] for s in a])
    full_b = np.array([score(s.sum(axis=0, keepdims=True))[0] for s in b])
    samples = score_a.mean(axis=0) - score_b.mean(axis=0)  # (R,): seeds held fixed
    estimate = float(full_a.mean() - full_b.mean())
    se_examples = float(np.nanstd(samples, ddof=1))
    if len(a) == 1 and len(b) == 1:
        low, high = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
        how = f"paired bootstrap, {resamples:,} resamples of {n:,} examples"
        return Difference(estimate, float(low), float(high), two_sided_p(samples), how, se_examples, None, n, 1, 0.0)
    if paired_seeds:
        per_seed = full_a - full_b
        seed_var, df = per_seed.var(ddof=1) / len(a), len(a) - 1
        sd_seeds = float(per_seed.std(ddof=1))
        how = f"paired t over {len(a)} seed pairs, plus the paired bootstrap's test-sample variance ({resamples:,} resamples of {n:,} examples)"
    else:
        spread = {k: x.var(ddof=1) for k, x in (("a", full_a), ("b", full_b)) if len(x) > 1}
        if len(spread) == 2:  # Welch: each side's own seed variance, Welch-Satterthwaite degrees of freedom
            va, vb = spread["a"] / len(a), spread["b"] / len(b)
            seed_var = va + vb
            df = seed_var**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if seed_var > 0 else len(a) + len(b) - 2
        else:  # one side ran one seed: the other side's seed variance stands for both
            pooled = next(iter(spread.values()))
            seed_var, df = pooled * (1 / len(a) + 1 / len(b)), max(len(a), len(b)) - 1
        sd_seeds = float(math.sqrt(seed_var * len(a) * len(b) / (len(a) + len(b))))
        how = f"Welch t over {len(a)} and {len(b)} unpaired seeds, plus the bootstrap's test-sample variance ({resamples:,} resamples of {n:,} shared examples)"
    # Both variances hold each run's own scatter over the fixed test examples (which examples a
    # model happens to get right): counted once, not twice. Its size, per side, is the bootstrap
    # variance of each run's score about its side's mean, over k - 1.
    scatter = sum(float(np.mean(np.nanvar(x - x.mean(axis=0), axis=1, ddof=1))) / (len(x) - 1) for x in ((score_a - score_b,) if paired_seeds else (score_a, score_b)) if len(x) > 1)
    se = math.sqrt(max(seed_var + se_examples**2 - scatter, seed_var, se_examples**2))
    # Satterthwaite: the t's degrees of freedom are the seeds' where their variance dominates and
    # grow towards the normal's where the test sample's (estimated from N examples) does
    df = df * (se**2 / seed_var) ** 2 if seed_var > 0 else math.inf
    half = sps.t.ppf(0.5 + level / 2, df) * se
    p = float(2 * sps.t.sf(abs(estimate) / se, df)) if se > 0 else (1.0 if estimate == 0 else 0.0)
    return Difference(estimate, estimate - half, estimate + half, p, how, se_examples, sd_seeds, n, min(len(a), len(b)), float(seed_var))


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values (Holm 1979): the i-th smallest times (m - i + 1), kept
    non-decreasing, at most 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def needed(difference: Difference) -> dict:
    """Roughly how many test examples (seeds as they are), or seeds (this test set), would detect
    ``difference.estimate`` with 80 % power in a two-sided test at 0.05 (normal approximation).

    The estimate's variance is the seeds' share, which falls as 1/seeds, plus the test sample's,
    which falls as 1/examples; detection needs it below (difference / (z_0.975 + z_0.80))^2. Where
    the other share alone is already above that, more of this one cannot do it: None.
    """
    from scipy import stats

    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    delta = abs(difference.estimate)
    if delta == 0 or not math.isfinite(delta):
        return {"examples": None, "seeds": None}
    target = (delta / z) ** 2
    test_var = difference.se_examples**2
    examples = seeds = None
    if test_var > 0 and target > difference.seed_var:
        examples = math.ceil(difference.examples * test_var / (target - difference.seed_var))
    if difference.seed_var > 0 and target > test_var:
        seeds = math.ceil(max(2.0, difference.seed_var * difference.seeds / (target - test_var)))
    return {"examples": examples, "seeds": seeds}

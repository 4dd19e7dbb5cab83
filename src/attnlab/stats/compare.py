"""Intervals and paired differences of finished runs, read from their run directories: what the
sweep report and ``attnlab-compare`` show.

A run is its metrics.json and the per-example file of its test split; a configuration is its runs,
one a seed. BLEU and chrF between two single runs are tested by sacrebleu's own paired bootstrap
(``sacrebleu --paired-bs``: the same p-value for the same files, resamples and seed); with seeds on
both sides, by the paired bootstrap of :mod:`attnlab.stats.resampling` over sacrebleu's sentence
statistics. Every other metric: the paired percentile bootstrap.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from attnlab.run.results import RunResult
from attnlab.stats import examples as examples_
from attnlab.stats.measures import measure
from attnlab.stats.resampling import Difference, Interval, bootstrap_interval, paired_bootstrap, t_interval

SACREBLEU_MEASURES = ("bleu", "chrf")


class NotTestable(ValueError):
    """A run or pair the report cannot test, and why (one line)."""


@dataclass
class Run:
    dir: Path
    result: RunResult
    _examples: Dict[str, examples_.ExampleSet] = field(default_factory=dict, repr=False)

    def examples(self, split: str) -> examples_.ExampleSet:
        if split not in self._examples:
            described = (self.result.extras.get("examples") or {}).get(split)
            if described is None:
                raise NotTestable(
                    f"{self.dir} has no per-example outputs for its {split} split (metrics.json has no extras.examples: "
                    "a run from before per-example records, or a task that keeps none); re-evaluate its checkpoint with eval.py to test it"
                )
            try:
                self._examples[split] = examples_.load(self.dir, described)
            except ValueError as exc:
                raise NotTestable(str(exc)) from None
        return self._examples[split]

    def measure_of(self, key: str) -> str:
        split = key.split("/")[0]
        name = self.examples(split).measures.get(key)
        if name is None:
            raise NotTestable(f"{self.dir}: no per-example measure for {key} (its examples recompute {', '.join(self.examples(split).measures) or 'nothing'})")
        return name

    def stats(self, key: str) -> np.ndarray:
        return measure(self.measure_of(key)).stats(self.examples(key.split("/")[0]).rows)


def read_run(directory: Path) -> Run:
    """A run directory (one with metrics.json); ValueError naming the file otherwise."""
    path = Path(directory) / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{directory}: no metrics.json (not a run directory)")
    result = RunResult.read(path)
    if result.status != "ok":
        raise ValueError(f"{path}: the run failed ({result.error or 'no reason recorded'})")
    return Run(Path(directory), result)


@contextlib.contextmanager
def sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacrebleu reads its resampling seed from SACREBLEU_SEED, as its command line does."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = before


def sacrebleu_paired_p(name: str, baseline: Sequence[str], system: Sequence[str], references: Sequence[str], resamples: int, seed: int) -> float:
    """sacrebleu's paired bootstrap p-value of ``system`` against ``baseline`` (its ``--paired-bs``)."""
    import sacrebleu
    from sacrebleu.significance import PairedTest

    metric = sacrebleu.BLEU() if name == "bleu" else sacrebleu.CHRF()
    with sacrebleu_seed(seed):
        test = PairedTest([("baseline", list(baseline)), ("system", list(system))], {name: metric}, [list(references)], test_type="bs", n_samples=resamples)
        _, scores = test()
    (column,) = [v for k, v in scores.items() if k != "System"]
    return float(column[1].p_value)


def sacrebleu_interval(name: str, run: Run, key: str, resamples: int, seed: int) -> Interval:
    """sacrebleu's own bootstrap confidence interval of a run's BLEU or chrF (``--confidence``)."""
    import sacrebleu

    from sacrebleu.significance import _bootstrap_resample

    rows = run.examples(key.split("/")[0]).rows
    metric = sacrebleu.BLEU() if name == "bleu" else sacrebleu.CHRF()
    hypotheses, references = [r["hypothesis"] for r in rows], [[r["reference"] for r in rows]]
    # sacrebleu's resamples, and its interval (Score.estimate_ci) computed here: its own
    # statistics.mean fails on a mix of float and numpy float32 scores, which a resample scoring
    # exactly 0 brings (a run whose BLEU is near 0; "don't know how to coerce float and float32")
    stats = metric._extract_corpus_statistics(hypotheses, references)  # what corpus_score does, once for both
    with sacrebleu_seed(seed):
        _, scores = _bootstrap_resample(stats, metric, resamples)
    raw = sorted(float(s.score) for s in scores)
    cut = len(raw) // 40  # 95 %: 1/40 from each end, as sacrebleu
    mean, half = sum(raw) / len(raw), 0.5 * (raw[len(raw) - cut - 1] - raw[cut])
    return Interval(float(metric._aggregate_and_compute(stats).score), mean - half, mean + half, f"sacrebleu bootstrap over {len(rows):,} examples")


def interval(runs: Sequence[Run], key: str, resamples: int = 1000, seed: int = 12345) -> Interval:
    """A configuration's 95 % interval on ``key``: over seeds (t) with two or more runs, over its
    test examples (bootstrap) with one."""
    values = [v for v in (r.result.metric(key) for r in runs) if v is not None]
    if len(values) >= 2:
        return t_interval(values)
    if not runs:
        raise NotTestable(f"no run reports {key}")
    run = runs[0]
    name = run.measure_of(key)
    if name in SACREBLEU_MEASURES:
        return sacrebleu_interval(name, run, key, resamples, seed)
    return bootstrap_interval(run.stats(key), measure(name).score, resamples, seed)


def same_examples(a: Sequence[Run], b: Sequence[Run], split: str) -> None:
    """Refuses (NotTestable, naming the file and line) runs that were not scored on the same examples."""
    first = a[0].examples(split)
    for run in [*a[1:], *b]:
        why = examples_.first_difference(first, run.examples(split))
        if why:
            raise NotTestable(f"not the same {split} examples, so no paired test: {why}")


def pair_seeds(a: Sequence[Run], b: Sequence[Run]) -> Tuple[List[Run], List[Run], bool]:
    """Runs of the seeds both sides have, in seed order (paired); all runs, unpaired, when they
    share none. Two single runs are a pair whatever their seeds."""
    if len(a) == 1 and len(b) == 1:
        return list(a), list(b), True
    by_a = {r.result.seed: r for r in a}
    by_b = {r.result.seed: r for r in b}
    common = sorted(s for s in by_a if s in by_b and s is not None)
    if common:
        return [by_a[s] for s in common], [by_b[s] for s in common], True
    return list(a), list(b), False


def difference(a: Sequence[Run], b: Sequence[Run], key: str, resamples: int = 1000, seed: int = 12345) -> Difference:
    """``a`` minus ``b`` on ``key`` by a paired test on their common test examples."""
    split = key.split("/")[0]
    shared = {r.dir.resolve() for r in a} & {r.dir.resolve() for r in b}
    if shared:
        raise NotTestable(f"{sorted(shared)[0]} is on both sides: a run cannot be tested against itself")
    same_examples(a, b, split)
    a, b, paired = pair_seeds(a, b)
    name = a[0].measure_of(key)
    for run in [*a[1:], *b]:
        if run.measure_of(key) != name:
            raise NotTestable(f"{key} is {name} in {a[0].dir} but {run.measure_of(key)} in {run.dir}")
    score = measure(name).score
    result = paired_bootstrap([r.stats(key) for r in a], [r.stats(key) for r in b], score, resamples, seed, paired)
    if name in SACREBLEU_MEASURES and paired and len(a) == 1:
        rows_a, rows_b = a[0].examples(split).rows, b[0].examples(split).rows
        result.p = sacrebleu_paired_p(name, [r["hypothesis"] for r in rows_b], [r["hypothesis"] for r in rows_a], [r["reference"] for r in rows_a], resamples, seed)
        result.method = f"sacrebleu --paired-bs, {resamples:,} resamples of {result.examples:,} examples (interval: paired percentile bootstrap)"
    return result


def run_intervals(run_dir: Path, result: RunResult, split: str = "test", resamples: int = 1000, seed: int = 12345) -> Dict[str, Dict[str, object]]:
    """A finished run's 95 % bootstrap interval over its ``split`` examples for every metric its
    per-example file recomputes (metrics.json's ``extras.intervals``)."""
    described = (result.extras.get("examples") or {}).get(split)
    if not described:
        return {}
    run = Run(Path(run_dir), result)
    out: Dict[str, Dict[str, object]] = {}
    for key in described["measures"]:
        found = interval([run], key, resamples, seed)
        out[key] = {"low": found.low, "high": found.high, "method": found.method}
    return out

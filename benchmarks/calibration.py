"""Do attnlab's intervals and tests keep their promises? Synthetic data with a known answer, many
draws: how often a 95 % interval covers the true value, how often a test rejects a true null at
0.05 (its false-positive rate), and how often it finds a real difference (its power).

    python benchmarks/calibration.py                   # 2,000 draws each (a few minutes on 2 cores)
    python benchmarks/calibration.py --draws 500

Writes benchmarks/results/calibration.json and docs/significance/calibration.md. A rate from
``d`` draws has a standard error of about sqrt(r (1 - r) / d): 0.005 at 0.05 with 2,000 draws.

The data: N test examples, example i right with probability 0.4 + 0.5 d_i (+ a shift), d_i ~
U(0, 1) shared by the systems compared (what pairing exploits); seeds move a model by a shift
drawn from N(0, 0.03^2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from attnlab.stats.measures import measure  # noqa: E402
from attnlab.stats.resampling import bootstrap_interval, paired_bootstrap, resample_counts, t_interval  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "calibration.json"
DOC = Path(__file__).resolve().parents[1] / "docs" / "significance" / "calibration.md"
ACCURACY = measure("accuracy").score


def system(rng, difficulty, shift=0.0):
    right = rng.random(len(difficulty)) < np.clip(0.4 + 0.5 * difficulty + shift, 0, 1)
    return np.stack([right.astype(float), np.ones(len(difficulty))], axis=1)


def sacrebleu_p(a, b, resamples, seed):
    """sacrebleu's paired-bs statistic (significance._paired_bs_test) on accuracy."""
    counts = resample_counts(len(a), resamples, np.random.default_rng(seed))
    spread = np.abs(ACCURACY(counts @ a) - ACCURACY(counts @ b))
    observed = abs(ACCURACY(a.sum(0, keepdims=True)) - ACCURACY(b.sum(0, keepdims=True)))[0]
    return (np.sum(spread - spread.mean() > observed) + 1) / (resamples + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=500)
    args = parser.parse_args()
    if args.draws < 10 or args.examples < 10 or args.resamples < 100:
        parser.error("--draws and --examples must be at least 10, --resamples at least 100")
    rng = np.random.default_rng(0)
    n, r, d = args.examples, args.resamples, args.draws
    keys = ("bootstrap_covers", "t_covers", "paired_fp", "sacrebleu_fp", "seeds_paired_fp", "seeds_dominant_fp", "seeds_unpaired_fp", "power_5", "power_10", "seeds_power_10")
    counts = {k: 0 for k in keys}
    for i in range(d):
        difficulty = rng.random(n)
        a, b = system(rng, difficulty), system(rng, difficulty)
        found = bootstrap_interval(a, ACCURACY, r, i + 1)
        counts["bootstrap_covers"] += found.low <= 0.65 <= found.high
        seeds = rng.normal(10.0, 2.0, size=3)
        found = t_interval(seeds)
        counts["t_covers"] += found.low <= 10.0 <= found.high
        counts["paired_fp"] += paired_bootstrap([a], [b], ACCURACY, r, i + 1).p < 0.05
        counts["sacrebleu_fp"] += sacrebleu_p(a, b, r, i + 1) < 0.05
        for shift, key in ((0.05, "power_5"), (0.10, "power_10")):
            counts[key] += paired_bootstrap([system(rng, difficulty, shift)], [b], ACCURACY, r, i + 1).p < 0.05
        runs_a = [system(rng, difficulty, rng.normal(0, 0.03)) for _ in range(3)]
        runs_b = [system(rng, difficulty, rng.normal(0, 0.03)) for _ in range(3)]
        counts["seeds_paired_fp"] += paired_bootstrap(runs_a, runs_b, ACCURACY, r, i + 1, True).p < 0.05
        counts["seeds_unpaired_fp"] += paired_bootstrap(runs_a, runs_b, ACCURACY, r, i + 1, False).p < 0.05
        loud_a = [system(rng, difficulty, rng.normal(0, 0.10)) for _ in range(3)]  # seeds move a model more than the sample does
        loud_b = [system(rng, difficulty, rng.normal(0, 0.10)) for _ in range(3)]
        counts["seeds_dominant_fp"] += paired_bootstrap(loud_a, loud_b, ACCURACY, r, i + 1, True).p < 0.05
        better = [system(rng, difficulty, 0.10 + rng.normal(0, 0.03)) for _ in range(3)]
        counts["seeds_power_10"] += paired_bootstrap(better, runs_b, ACCURACY, r, i + 1, True).p < 0.05
        if (i + 1) % max(1, d // 20) == 0:
            print(f"{i + 1:,}/{d:,} draws", file=sys.stderr, flush=True)
    rates = {k: v / d for k, v in counts.items()}
    stderr = {k: math.sqrt(v * (1 - v) / d) for k, v in rates.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"draws": d, "examples": n, "resamples": r, "rates": rates, "standard_errors": stderr}, indent=2) + "\n")
    rows = [
        ("95 % percentile bootstrap interval of one run's accuracy covers the true accuracy", "bootstrap_covers", "0.95"),
        ("95 % t-interval over 3 seeds covers the true mean", "t_covers", "0.95"),
        ("paired bootstrap (attnlab, two-sided) rejects a true null at 0.05", "paired_fp", "0.05"),
        ("sacrebleu's paired-bs statistic rejects a true null at 0.05", "sacrebleu_fp", "0.05"),
        ("3 seed pairs (seed sd 3 points), paired t + test-sample variance, rejects a true null at 0.05", "seeds_paired_fp", "0.05"),
        ("3 seed pairs (seed sd 10 points: seeds dominate), rejects a true null at 0.05", "seeds_dominant_fp", "0.05"),
        ("3 unpaired seeds a side (seed sd 3 points), Welch t + test-sample variance, rejects a true null at 0.05", "seeds_unpaired_fp", "0.05"),
        ("one run a side: paired bootstrap finds a true +5-point difference", "power_5", "–"),
        ("one run a side: paired bootstrap finds a true +10-point difference", "power_10", "–"),
        ("3 seed pairs (seed sd 3 points) find a true +10-point difference", "seeds_power_10", "–"),
    ]
    lines = [
        "# Calibration of attnlab's intervals and tests",
        "",
        f"`python benchmarks/calibration.py --draws {d} --examples {n} --resamples {r}`: synthetic accuracy data with a known answer "
        f"({d:,} draws, {n} test examples, {r} resamples; see the script's docstring). Rate ± its standard error.",
        "",
        "| check | nominal | measured |",
        "|---|---|---|",
        *(f"| {text} | {nominal} | {rates[key]:.3f} ± {stderr[key]:.3f} |" for text, key, nominal in rows),
        "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Is B different from A? Two finished runs (or a run and a sweep) on the same test examples: the
difference per metric, its 95 % paired-bootstrap interval and p-value, in one table.

    attnlab-compare logs/train/runs/A logs/train/runs/B
    attnlab-compare RUN logs/ablation/multiruns/<time>          # the run against every configuration
    attnlab-compare A B --metric test/bleu --resamples 10000 --seed 7

A side is a run directory (it holds metrics.json) or a sweep directory, whose runs of one
configuration are its seeds; seeds that both sides ran are paired. BLEU and chrF between two single
runs use sacrebleu's paired bootstrap (``sacrebleu --paired-bs``, the same p-value); see
attnlab.stats.verdicts for when a difference is called significant. p-values here are not
corrected for the number of metrics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from attnlab import arguments as args_
from attnlab.stats.compare import Run, read_run


def side(path: Path) -> Dict[str, List[Run]]:
    """A run directory -> {its name: [it]}; a sweep -> {configuration: its runs}."""
    if not path.is_dir():
        raise ValueError(f"{path}: no such directory")
    if (path / "metrics.json").is_file():
        return {path.name: [read_run(path)]}
    from attnlab.cli.report import aggregate, load_jobs, runs_of

    rows = aggregate(load_jobs(path))
    if not rows:
        raise ValueError(f"{path}: neither a run directory (no metrics.json) nor a sweep with a finished run")
    return {row["config"]: runs_of(row) for row in rows}


def metrics_of(a: Sequence[Run], b: Sequence[Run], split: str, wanted: Optional[Sequence[str]]) -> List[tuple]:
    """(heading, key, higher is better) of the metrics both sides can test."""
    declared = {key: (heading, higher) for run in [*a, *b] for heading, key, higher in run.result.report_columns}
    keys = [k for k in a[0].examples(split).measures if k in b[0].examples(split).measures]
    if wanted:
        missing = [k for k in wanted if k not in keys]
        if missing:
            raise ValueError(f"--metric {missing[0]}: not a metric both sides' {split} examples recompute (they have: {', '.join(keys)})")
        keys = list(wanted)
    lower_better = ("loss", "ppl", "bpc", "bpb")
    return [(declared.get(k, (k, None))[0], k, declared[k][1] if k in declared else not k.endswith(lower_better)) for k in keys]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the baseline: a run directory or a sweep")
    parser.add_argument("b", type=Path, help="what is compared with it: a run directory or a sweep")
    parser.add_argument("--metric", action="append", metavar="KEY", help="a metric to compare (test/bleu); repeatable; default: every metric both recompute")
    parser.add_argument("--split", choices=["test", "val"], default="test", help="the evaluated split to compare on (default test)")
    parser.add_argument("--resamples", type=args_.integer(100, 100_000), default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=args_.integer(1, 2**31 - 1), default=12345, help="the resampling seed (default 12345, sacrebleu's)")
    args = parser.parse_args(argv)
    from attnlab.stats.verdicts import against_baseline, p_text, to_detect

    try:
        groups_a, groups_b = side(args.a), side(args.b)
        if len(groups_a) > 1 and len(groups_b) > 1:
            raise ValueError(f"both sides hold several configurations ({len(groups_a)} and {len(groups_b)}): give one side as a run or a one-configuration sweep")
        lines = []
        for name_a, runs_a in groups_a.items():
            for name_b, runs_b in groups_b.items():
                metrics = metrics_of(runs_a, runs_b, args.split, [m if "/" in m else f"{args.split}/{m}" for m in args.metric or []])
                label_a, label_b = f"A: {name_a}", f"B: {name_b}"
                comparisons = against_baseline({label_a: runs_a, label_b: runs_b}, label_a, metrics, args.resamples, args.seed)
                lines += [f"A = {args.a}{'' if len(groups_a) == 1 else f' ({name_a})'}: {len(runs_a)} run(s); B = {args.b}{'' if len(groups_b) == 1 else f' ({name_b})'}: {len(runs_b)} run(s)", ""]
                lines += ["| metric | A | B | B − A [95 % interval] | p | verdict | to detect it |", "|---|---|---|---|---|---|---|"]
                for c in comparisons:
                    if c.diff is None:
                        raise ValueError(c.why)
                    key, d = c.metric[1], c.diff
                    mean = lambda runs: sum(r.result.metric(key) or 0.0 for r in runs) / len(runs)  # noqa: E731
                    verdict = f"**{c.verdict}**" if c.significant else c.verdict
                    lines.append(
                        f"| {key} | {mean(runs_a):.4g} | {mean(runs_b):.4g} | {d.estimate:+.4g} [{d.low:+.4g}, {d.high:+.4g}] | {p_text(d.p)} | {verdict} | {'' if c.significant else to_detect(d)} |"
                    )
                methods = sorted({c.diff.method for c in comparisons})
                lines += ["", *(f"method: {m}" for m in methods), ""]
    except ValueError as exc:
        print(f"attnlab-compare: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

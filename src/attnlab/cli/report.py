"""Turn a finished sweep into ``report.md`` plus PNG plots, offline.

    attnlab-report logs/ablation/multiruns/<time>     # or: python -m attnlab.cli.report <dir>
    attnlab-report --wandb-group ENTITY/PROJECT/GROUP --out DIR   # from W&B instead

Reads every job's ``metrics.json`` (and ``attention_example.json``) under the sweep directory.
A job directory without a readable ``metrics.json`` (a killed job, a corrupt file) or with
``"status": "failed"`` is listed as failed with its error; the columns are the ones each job's
task declares in its metrics.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from attnlab import arguments as args_
from attnlab.run.results import AXES, FILE_NAME, RunResult

RUN_COLUMNS = [["tokens/s", "tokens_per_sec", True], ["wall time s", "wall_time_s", False], ["peak MiB", "peak_memory_mib", False]]


@dataclass
class Job:
    result: RunResult
    dir: str
    attention_example: Optional[Dict[str, Any]] = None

    @property
    def ok(self) -> bool:
        return self.result.status == "ok"


def load_jobs(sweep_dir: Path) -> List[Job]:
    """Every job directory (one with ``.hydra/config.yaml``) under ``sweep_dir``. A job without a
    readable metrics.json (killed, crashed, corrupt) is listed as failed, with the reason."""
    jobs = []
    for config in sorted(sweep_dir.rglob(".hydra/config.yaml")):
        job_dir = config.parent.parent
        metrics = job_dir / FILE_NAME
        if metrics.exists():
            try:
                result = RunResult.read(metrics)
            except ValueError as exc:
                result = _unfinished(job_dir, f"unreadable {exc}")
        else:
            log = job_dir / "train.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            result = _unfinished(job_dir, f"no {FILE_NAME} (the job was killed or crashed)" + (f"; last log line: {tail[0]}" if tail else ""))
        job = Job(result, str(job_dir))
        attention = job_dir / "attention_example.json"
        if attention.exists():
            try:
                job.attention_example = json.loads(attention.read_text())
            except (OSError, ValueError):
                pass  # the plot leaves this configuration out; its numbers are still reported
        jobs.append(job)
    return jobs


def _unfinished(job_dir: Path, error: str) -> RunResult:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    lines = []
    if overrides_file.exists():
        lines = [line.strip().lstrip("- ").strip() for line in overrides_file.read_text(errors="replace").splitlines() if line.strip()]
    return RunResult(status="failed", error=error, overrides=lines, run_name=" ".join(lines) or job_dir.name)


def declared_columns(result: RunResult) -> List[List[Any]]:
    """The columns a job's metrics.json declares; for files that declare none (attnlab 0.1, W&B
    runs), the columns of the job's task class."""
    if result.report_columns or result.status != "ok":
        return result.report_columns
    from attnlab import components

    return [list(c) for c in components.lookup("task", result.task or "translation").report_columns]


def columns_of(jobs: Sequence[Job]) -> List[List[Any]]:
    """The report columns the jobs' tasks declare (in first-seen order), then throughput and time."""
    columns: List[List[Any]] = []
    for job in jobs:
        for column in declared_columns(job.result):
            if list(column) not in columns:
                columns.append(list(column))
    return columns + RUN_COLUMNS


# overrides that choose an axis (or the run's plumbing) rather than a setting of the study
NOT_SETTINGS = {"arch", "attention", "pos_enc", "data", "task", "seed", "arch_attention", "experiment", "logger", "callbacks", "trainer", "debug"}


def settings_of(job: Job) -> Dict[str, str]:
    """The job's command-line settings beyond the axes and the seed (``data.train_size``, ``+source``)."""
    out = {}
    for override in job.result.overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in NOT_SETTINGS or key.split(".")[0] in ("hydra", "paths") or key.split("/")[0] == "hydra":
            continue
        out[key] = value
    return out


def varying_settings(jobs: Sequence[Job]) -> List[str]:
    """The settings whose values differ between the jobs: what, beyond the axes, a sweep compares."""
    values: Dict[str, set] = defaultdict(set)
    for job in jobs:
        for key, value in settings_of(job).items():
            values[key].add(value)
    return sorted(k for k, v in values.items() if len(v) > 1 or sum(k in settings_of(j) for j in jobs) < len(jobs))


def label(job: Job, with_data: bool, varying: Sequence[str] = ()) -> str:
    parts = [str(job.result.choices.get(axis) or "?") for axis in AXES[: 4 if with_data else 3]]
    settings = settings_of(job)
    extra = ", ".join(f"{k}={settings.get(k, '-')}" for k in varying)
    return " / ".join(parts) + (f" ({extra})" if extra else "")


def aggregate(jobs: Sequence[Job]) -> List[Dict[str, Any]]:
    """Group successful jobs by configuration (all axes and varying settings but the seed): mean and
    std per column."""
    ok = [j for j in jobs if j.ok]
    with_data = len({j.result.choices.get("data") for j in ok}) > 1
    varying = [k for k in varying_settings(ok) if k != "seed"]
    groups: Dict[str, List[Job]] = defaultdict(list)
    for job in ok:
        groups[label(job, with_data, varying)].append(job)
    rows = []
    for name, members in sorted(groups.items()):
        row = {"config": name, "jobs": members, "seeds": sorted((j.result.seed for j in members), key=lambda s: (s is None, s or 0)), "params": members[0].result.params, "settings": settings_of(members[0])}
        for _, key, _ in columns_of(jobs):
            values = [v for v in (j.result.metric(key) for j in members) if v is not None]
            row[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None) if values else (None, None)
        rows.append(row)
    return rows


def runs_of(row: Dict[str, Any]) -> List[Any]:
    """The row's jobs as runs, made once: each run reads and checks its examples file once, however
    many intervals and tests use it."""
    from attnlab.stats.compare import Run

    if "runs" not in row:
        row["runs"] = [Run(Path(job.dir), job.result) for job in row["jobs"]]
    return row["runs"]


def add_intervals(rows: Sequence[Dict[str, Any]], columns: Sequence[Sequence[Any]], resamples: int, seed: int) -> None:
    """Each row's 95 % interval per metric column: over seeds (t) with two or more, else over the
    run's examples (bootstrap); none when the run kept no per-example outputs."""
    from attnlab.stats.compare import NotTestable, interval

    for row in rows:
        row["intervals"] = {}
        for _, key, _ in columns:
            if "/" in key and row[key][0] is not None:
                try:
                    row["intervals"][key] = interval(runs_of(row), key, resamples, seed)
                except NotTestable:
                    pass


def digits_of(key: str) -> int:
    return 0 if key in ("tokens_per_sec", "peak_memory_mib") else (1 if key == "wall_time_s" else 2)


def fmt(mean: Optional[float], std: Optional[float], key: str, bounds: Any = None) -> str:
    """``mean ± std``, or ``mean [low, high]`` when the 95 % interval is known."""
    if mean is None:
        return "–"
    digits = digits_of(key)
    text = f"{mean:,.{digits}f}"
    if bounds is not None:
        return text + f" [{bounds.low:,.{digits}f}, {bounds.high:,.{digits}f}]"
    return text + (f" ± {std:,.{digits}f}" if std is not None else "")


def normalise(name: str) -> str:
    return "".join(name.lower().split())


def find_config(rows: Sequence[Dict[str, Any]], name: str) -> Dict[str, Any]:
    """The row a --baseline names (spaces and case do not matter); ValueError listing them."""
    matches = [r for r in rows if normalise(r["config"]) == normalise(name)]
    if not matches:
        raise ValueError(f"--baseline {name!r} names no configuration of this sweep; it has: " + "; ".join(r["config"] for r in rows))
    return matches[0]


def default_baseline(rows: Sequence[Dict[str, Any]], columns: Sequence[Sequence[Any]]) -> Optional[Dict[str, Any]]:
    """The best configuration on the first test column (what the report would call the winner)."""
    heading_key = next(((k, higher) for _, k, higher in columns if k.startswith("test/")), None)
    if heading_key is None:
        return None
    key, higher = heading_key
    scored = [r for r in rows if r[key][0] is not None]
    return (max if higher else min)(scored, key=lambda r: r[key][0]) if scored else None


def significance_section(rows: Sequence[Dict[str, Any]], columns: Sequence[Sequence[Any]], compare_to: Optional[str], resamples: int, seed: int) -> List[str]:
    """Each configuration against the baseline on every test column: difference, interval, p, Holm, verdict."""
    from attnlab.stats.verdicts import HOW_TO_READ, against_baseline, p_text, to_detect

    metrics = [tuple(c) for c in columns if c[1].startswith("test/") and any(r[c[1]][0] is not None for r in rows)]  # bits/byte of a character LM: none
    if len(rows) < 2 or not metrics:
        return []
    base = find_config(rows, compare_to) if compare_to else default_baseline(rows, columns)
    if base is None:
        return []
    groups = {row["config"]: runs_of(row) for row in rows}
    comparisons = against_baseline(groups, base["config"], metrics, resamples, seed)
    why = "named with --baseline" if compare_to else f"the best on {metrics[0][0]}; --baseline names another"
    lines = ["## Is the difference real? Each configuration against the baseline", "", f"Baseline: **{base['config']}** ({why}). {resamples:,} resamples, seed {seed}.", ""]
    untested: Dict[str, str] = {}
    for metric in metrics:
        heading, key, _ = metric
        found = [c for c in comparisons if c.metric == metric]
        digits = digits_of(key)
        lines += [f"### {heading}", "", "| configuration | difference [95 % interval] | p | p (Holm) | verdict | to detect it |", "|---|---|---|---|---|---|"]
        for c in found:
            if c.diff is None:
                untested.setdefault(c.why or "", c.config)
                lines.append(f"| {c.config} | – | – | – | not tested | – |")
                continue
            d = c.diff
            verdict = f"**{c.verdict}**" if c.significant else f"*{c.verdict}*"
            detect = to_detect(d) if not c.significant else ""
            lines.append(f"| {c.config} | {d.estimate:+,.{digits}f} [{d.low:+,.{digits}f}, {d.high:+,.{digits}f}] | {p_text(d.p)} | {p_text(c.p_holm)} | {verdict} | {detect} |")
        methods = sorted({c.diff.method for c in found if c.diff is not None})
        lines += ["", *(f"Method: {m}." for m in methods), ""]
    if untested:
        lines += ["Not tested:", ""] + [f"- {config}: {reason}" for reason, config in untested.items()] + [""]
    lines += [HOW_TO_READ, ""]
    return lines


def curve_series(rows: Sequence[Dict[str, Any]], name: str, x: str, ys: Sequence[str], stage: str = "test", min_count: int = 1, count: str = "n") -> Dict[str, List[Dict[str, Any]]]:
    """Per configuration, a curve the jobs logged (``extras[name][stage]``: rows with ``x``),
    each ``y`` averaged over the configuration's seeds; points with fewer than ``min_count``
    examples are left out (a corpus BLEU of three sentences is noise)."""
    series = {}
    for row in rows:
        points: Dict[float, List[Dict[str, Any]]] = defaultdict(list)
        for job in row["jobs"]:
            for r in job.result.extras.get(name, {}).get(stage, []):
                points[r[x]].append(r)
        if points:
            series[row["config"]] = [
                {x: k, **({"bucket": v[0]["bucket"]} if "bucket" in v[0] else {}), count: v[0].get(count, 0), **{y: statistics.mean(r[y] for r in v) for y in ys if y in v[0]}}
                for k, v in sorted(points.items())
                if v[0].get(count, min_count) >= min_count
            ]
    return series


def bleu_by_length_series(rows: Sequence[Dict[str, Any]], stage: str = "test", min_sentences: int = 1) -> Dict[str, List[Dict[str, Any]]]:
    return curve_series(rows, "bleu_by_length", "min_len", ("bleu", "exact_match"), stage, min_sentences)


def seen_range(jobs: Sequence[Job]) -> Optional[List[float]]:
    """The lengths training saw, when every job saw the same (a length-extrapolation sweep)."""
    ranges = {tuple(j.result.extras.get("train_length_range", ())) for j in jobs if j.ok}
    return list(next(iter(ranges))) if len(ranges) == 1 and () not in ranges else None


def numeric(value: str) -> Optional[float]:
    try:
        return float(value)
    except ValueError:
        return None


def curve_section(jobs: Sequence[Job], rows: Sequence[Dict[str, Any]], key: str, out_dir: Path, baseline: Optional[str]) -> List[str]:
    """The first test metric against a swept setting (e.g. data.train_size), one line per value of
    the other settings; a setting of "null" is placed at the job's training-set size."""
    from attnlab import plots

    metric = next((k for _, k, _ in columns_of(jobs) if k.startswith("test/")), None)
    if metric is None:
        return []
    series: Dict[str, Dict[float, tuple]] = defaultdict(dict)
    others = [k for k in varying_settings([j for j in jobs if j.ok]) if k not in ("seed", key)]  # what tells the lines apart
    for row in rows:
        value = row["settings"].get(key)
        x = numeric(value) if value is not None else None
        if x is None:  # "null": all of the training split
            x = row["jobs"][0].result.extras.get("data_sizes", {}).get("train")
        if x is None:
            continue
        name = row["config"].split(" (")[0] + "".join(f", {k}={row['settings'].get(k, '-')}" for k in others)
        series[name][float(x)] = row[metric]
    if baseline == "tfidf-svm":
        from attnlab.cli.baseline import NAME, baseline_curve

        sizes = sorted({x for s in series.values() for x in s})
        total = max(sizes)
        by_size = baseline_curve(Path(next(j.dir for j in jobs if j.ok)), [None if x == total else int(x) for x in sizes])
        series[NAME] = {float(total if size is None else size): (acc, None) for size, acc in by_size.items()}
    xs = sorted({x for s in series.values() for x in s})
    heading = key.split(".")[-1]
    lines = [f"## {metric} against {key}", "", f"![{metric} against {key}]({heading}_curve.png)", ""]
    lines += ["| | " + " | ".join(f"{int(x):,}" for x in xs) + " |", "|---|" + "---|" * len(xs)]
    for name, points in sorted(series.items()):
        lines.append(f"| {name} | " + " | ".join(fmt(*points[x], metric) if x in points else "–" for x in xs) + " |")
    lines.append("")
    plots.save(plots.curve_figure({n: {x: m for x, (m, _) in p.items()} for n, p in series.items()}, key, metric), out_dir / f"{heading}_curve.png")
    return lines


def write_report(
    jobs: Sequence[Job],
    out_dir: Path,
    title: str,
    min_bucket: int = 20,
    curve: Optional[str] = None,
    baseline: Optional[str] = None,
    compare_to: Optional[str] = None,
    resamples: int = 1000,
    seed: int = 12345,
) -> Path:
    from attnlab import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = aggregate(jobs)
    failed = [j for j in jobs if not j.ok]
    columns = columns_of(jobs)
    if compare_to:
        find_config(rows, compare_to)  # a --baseline that names no configuration: refused before any work
    add_intervals(rows, columns, resamples, seed)
    lines = [f"# {title}", "", f"{len(jobs)} jobs: {len(jobs) - len(failed)} finished, {len(failed)} failed.", ""]

    header = ["configuration (arch / attention / pos_enc)", "seeds", "params"] + [c[0] for c in columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["config"], ",".join(str(s) for s in row["seeds"] if s is not None) or "–", f"{row['params']:,}" if row["params"] else "–"]
        cells += [fmt(*row[key], key, row["intervals"].get(key)) for _, key, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        "Metrics are the mean over seeds with its 95 % interval in brackets: a t-interval over the seeds "
        "where a configuration has two or more, a bootstrap interval over the test examples where it has one "
        "(sacrebleu's own for BLEU and chrF). A single run without per-example outputs (from before attnlab kept them) has none.",
        "",
    ]
    signatures = sorted({j.result.extras["bleu_signature"] for j in jobs if j.result.extras.get("bleu_signature")})
    if signatures:
        lines += [f"BLEU and chrF: sacrebleu on detokenized text; BLEU signature `{'`, `'.join(signatures)}`.", ""]

    lines += ["## Best configuration per metric", ""]
    for heading, key, higher in columns:
        scored = [r for r in rows if r[key][0] is not None]
        if scored:
            best = (max if higher else min)(scored, key=lambda r: r[key][0])
            lines.append(f"- **{heading}**: {best['config']} ({fmt(*best[key], key, best['intervals'].get(key))})")
    lines.append("")

    series = bleu_by_length_series(rows, min_sentences=min_bucket)
    seen = seen_range(jobs)
    if series:
        plots.save(plots.bleu_by_length_figure(series, "test BLEU by source length (cf. Bahdanau et al. 2015, Fig. 2)", seen=seen), out_dir / "bleu_by_length.png")
        lines += ["## BLEU by source length", "", "![BLEU by source length](bleu_by_length.png)", ""]
        if all("exact_match" in r for s in series.values() for r in s):
            plots.save(plots.bleu_by_length_figure(series, "test exact match by source length", y="exact_match", y_label="exact match %", seen=seen), out_dir / "exact_by_length.png")
            lines += ["![exact match by source length](exact_by_length.png)", ""]
        if seen:
            lines += [f"Shaded: the source lengths training saw ({seen[0]}-{seen[1]} words).", ""]
        if min_bucket > 1:
            lines += [f"Length buckets with fewer than {min_bucket} test sentences are left out.", ""]
        buckets = sorted({(r["min_len"], r["bucket"]) for s in series.values() for r in s})
        lines += ["| configuration | " + " | ".join(b for _, b in buckets) + " |", "|---|" + "---|" * len(buckets)]
        for name, s in sorted(series.items()):
            by = {r["min_len"]: r["bleu"] for r in s}
            lines.append(f"| {name} | " + " | ".join(f"{by[k]:.1f}" if k in by else "–" for k, _ in buckets) + " |")
        lines.append("")

    positions = curve_series(rows, "loss_by_position", "position", ("loss",), count="tokens")
    if positions:
        plots.save(plots.bleu_by_length_figure(positions, "test loss by position in the context", y="loss", y_label="loss (nats per token)", x="position", x_label="position in the context (tokens)", seen=seen), out_dir / "loss_by_position.png")
        lines += ["## Loss by position in the context", "", "![loss by position](loss_by_position.png)", ""]
        if seen:
            lines += [f"Shaded: the context lengths training saw (up to {seen[1]} tokens).", ""]
        xs = sorted({r["position"] for s in positions.values() for r in s})
        lines += ["| configuration | " + " | ".join(f"≤{x}" for x in xs) + " |", "|---|" + "---|" * len(xs)]
        for name, s in sorted(positions.items()):
            by = {r["position"]: r["loss"] for r in s}
            lines.append(f"| {name} | " + " | ".join(f"{by[x]:.2f}" if x in by else "–" for x in xs) + " |")
        lines.append("")

    lines += significance_section(rows, columns, compare_to, resamples, seed)

    if curve:
        lines += curve_section(jobs, rows, curve, out_dir, baseline)

    panels = []
    for row in rows:
        example = next((j.attention_example for j in row["jobs"] if j.attention_example), None)
        if example and example["output"]:
            panels.append({"label": row["config"], **example})
    if panels:
        pieces = panels[0]["source"][:-1]
        # subword pieces carry their word's leading space as "▁": show the sentence as text
        source = "".join(pieces).replace("▁", " ").strip() if any(p.startswith("▁") for p in pieces) else " ".join(pieces)
        plots.save(plots.heatmap_grid_figure(panels, title=f"cross-attention, last layer, mean over heads: {source}"), out_dir / "attention_grid.png")
        lines += ["## Alignments for one test sentence (cf. Bahdanau et al. 2015, Fig. 3)", "", f"Source: *{source}*", "", "![attention grid](attention_grid.png)", ""]

    if failed:
        lines += ["## Failed jobs", ""]
        for job in failed:
            name = job.result.run_name or " ".join(job.result.overrides)
            error = " ".join(str(job.result.error or "unknown error").split())  # one line in the list
            lines.append(f"- `{name}` ({job.dir}): {error}")
        lines.append("")

    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def jobs_from_wandb(path: str) -> List[Job]:
    """Jobs of a W&B group ``ENTITY/PROJECT/GROUP`` (needs an account and the network)."""
    import wandb

    entity_project, group = path.rsplit("/", 1)
    jobs = []
    for run in wandb.Api().runs(entity_project, filters={"group": group}):
        summary = dict(run.summary)
        result = RunResult(
            status="ok" if run.state == "finished" else "failed",
            error=f"W&B run state: {run.state}",
            task=run.config.get("task"),
            choices={axis: run.config.get(axis) for axis in AXES},
            seed=run.config.get("seed"),
            params=run.config.get("params"),
            run_name=run.name,
            metrics={k: v for k, v in summary.items() if k.startswith(("val/", "test/")) and isinstance(v, (int, float))},
            tokens_per_sec=summary.get("summary/tokens_per_sec"),
            wall_time_s=summary.get("summary/wall_time_s"),
        )
        jobs.append(Job(result, run.url))
    return jobs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", nargs="?", type=Path, help="a multirun directory (or any directory of runs)")
    parser.add_argument("--wandb-group", help="ENTITY/PROJECT/GROUP: read the jobs from W&B instead")
    parser.add_argument("--out", type=args_.output_dir, help="the directory report.md and its plots go to (default: the sweep directory)")
    parser.add_argument("--min-bucket", type=args_.integer(1, 10**6), default=20, help="leave out length buckets with fewer test sentences (default 20)")
    parser.add_argument("--curve", metavar="KEY", help="plot the first test metric against this swept setting (e.g. data.train_size)")
    parser.add_argument("--baseline", metavar="CONFIG", help='the configuration every other is tested against, as the report names it ("transformer / multihead / sinusoidal"); default: the best on the first test column')
    parser.add_argument("--svm", action="store_true", help="with --curve data.train_size: add a TF-IDF + linear SVM line (scikit-learn)")
    parser.add_argument("--resamples", type=args_.integer(100, 100_000), default=1000, help="bootstrap resamples for intervals and tests (default 1000)")
    parser.add_argument("--seed", type=args_.integer(1, 2**31 - 1), default=12345, help="the resampling seed (default 12345, sacrebleu's)")
    args = parser.parse_args(argv)
    if args.baseline == "tfidf-svm":  # its spelling before --baseline named a configuration
        args.baseline, args.svm = None, True
    if args.svm and args.curve != "data.train_size":
        parser.error("--svm needs --curve data.train_size (it trains on the same examples)")
    if args.wandb_group:
        jobs = jobs_from_wandb(args.wandb_group)
        out = args.out or Path(".")
        title = f"attnlab report: W&B group {args.wandb_group}"
    else:
        if args.sweep_dir is None or not args.sweep_dir.is_dir():
            parser.error(f"sweep directory not found: {args.sweep_dir}")
        jobs = load_jobs(args.sweep_dir)
        out = args.out or args.sweep_dir
        title = f"attnlab report: {args.sweep_dir}"
    if not jobs:
        print(f"attnlab-report: no jobs found (no .hydra/config.yaml under {args.sweep_dir})", file=sys.stderr)
        return 1
    try:
        report = write_report(jobs, out, title, min_bucket=args.min_bucket, curve=args.curve, baseline="tfidf-svm" if args.svm else None, compare_to=args.baseline, resamples=args.resamples, seed=args.seed)
    except ValueError as exc:
        print(f"attnlab-report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report} ({len(jobs)} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each attention head of a checkpoint does and how much it matters, over a split:

* importance per layer × head (Michel et al. 2019: the expected |∂L/∂ξ_h| of the head's gate,
  normalised per layer), attention entropy and mean attended distance per head;
* pruning curves: the task's metric (BLEU, accuracy, loss) with 0, 10, …, 90 % of the heads
  switched off in ascending order of importance, against random orders (a band), and per kind of
  attention; the largest fraction prunable within the tolerance of the unpruned metric;
* heads.json (everything), heads.png (heat grids per kind) and pruning.png in --out; with --wandb,
  the same in a W&B run (offline where no API key is configured).

    attnlab-heads --ckpt logs/bible/runs/<run>/checkpoints/last.ckpt --split val --out heads/
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from attnlab import arguments as args_
from attnlab.errors import AttnlabError, ConfigError

SPLITS = ("val", "test")


def _listed(grid: Optional[np.ndarray]) -> Optional[List[List[float]]]:
    return None if grid is None else np.round(grid.astype(float), 6).tolist()


class Evaluator:
    """The task's own evaluation of the split, with some heads switched off: one Lightning test
    loop per call, on the first ``batches`` batches."""

    def __init__(self, task: Any, loader: Any, split: str, batches: Optional[int]):
        import lightning as L

        from attnlab.tasks.base import EvaluationCallback

        class Latest(EvaluationCallback):
            evaluation = None

            def on_evaluation(self, trainer, task, evaluation) -> None:
                self.evaluation = evaluation

        self.task, self.loader, self.split = task, loader, split
        self.latest = Latest()
        quiet = logging.getLogger("lightning.pytorch")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # not "GPU available: False" once more: the progress lines are this tool's
        try:
            self.trainer = L.Trainer(
                accelerator="cpu", devices=1, logger=False, callbacks=[self.latest], enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False, limit_test_batches=batches or 1.0,
            )
        finally:
            quiet.setLevel(level)
        task.test_split = split
        self.calls = 0

    def metrics(self, gates: Optional[Dict[str, Any]]) -> Dict[str, float]:
        from attnlab.heads.gates import set_head_mask

        set_head_mask(self.task.model, gates)
        try:
            self.trainer.test(self.task, dataloaders=self.loader, verbose=False)
        finally:
            set_head_mask(self.task.model, None)
        self.calls += 1
        return {key.split("/", 1)[1]: value for key, value in self.latest.evaluation.metrics.items()}


def analyse(task: Any, loader: Any, split: str, batches: Optional[int], metric_name: Optional[str], tolerance: Optional[float], random_orders: int, progress: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """Everything attnlab-heads reports, as one JSON-ready mapping."""
    import itertools

    from attnlab.heads import pruning
    from attnlab.heads.gates import describe_heads, require_heads
    from attnlab.heads.measures import measure_heads

    layers = require_heads(task.model, "this checkpoint")
    shapes = {kind: (len(attns), attns[0].num_heads) for kind, attns in layers.items()}
    evaluator = Evaluator(task, loader, split, batches)
    unpruned = evaluator.metrics(None)  # first: a --metric the evaluation lacks is refused before the long work
    name = metric_name or task.monitor.split("/", 1)[1]
    if name not in unpruned:
        raise ConfigError(f"--metric {name}: the {task.name} evaluation reports {', '.join(sorted(unpruned))}")
    started = time.time()
    stats = measure_heads(task, itertools.islice(loader, batches) if batches else loader)
    progress(f"importance, entropy and distance over {stats.examples} examples ({stats.batches} batches): {time.time() - started:.0f} s")
    higher = task.monitor_mode == "max" if name == task.monitor.split("/", 1)[1] else name not in pruning.LOWER_IS_BETTER
    metric = pruning.Metric(name, higher, tolerance if tolerance is not None else pruning.default_tolerance(name, unpruned[name]))

    def evaluate(gates) -> float:
        return evaluator.metrics(gates)[name]

    fractions = list(pruning.FRACTIONS)
    order = pruning.by_importance(stats.importance)
    total = len(order)
    progress(f"unpruned {name} {unpruned[name]:.4f}; pruning {total} heads ({describe_heads(layers)}, layers × heads) by importance")
    by_importance = [unpruned[name]] + pruning.curve(order, shapes, fractions[1:], evaluate)
    random_values = []
    for seed in range(random_orders):
        progress(f"random order {seed + 1} of {random_orders}")
        random_values.append([unpruned[name]] + pruning.curve(pruning.random_order(stats.importance, seed), shapes, fractions[1:], evaluate))
    per_kind = {}
    if len(shapes) > 1:
        for kind in shapes:
            progress(f"{kind} alone: {', '.join(f'{f:.0%}' for f in pruning.KIND_FRACTIONS)} of its heads")
            kind_order = pruning.by_importance(stats.importance, [kind])
            per_kind[kind] = {"fractions": list(pruning.KIND_FRACTIONS), "values": pruning.curve(kind_order, shapes, pruning.KIND_FRACTIONS, evaluate)}
    band = None
    if random_values:
        matrix = np.array(random_values)
        band = {"mean": matrix.mean(0).tolist(), "low": matrix.min(0).tolist(), "high": matrix.max(0).tolist()}
    # the kind whose metric falls furthest on average over 25-100 % of its heads off, as Michel et al. compare the kinds of a translation model
    most_sensitive = min(per_kind, key=lambda k: float(np.mean(per_kind[k]["values"])) * (1 if higher else -1)) if per_kind else None
    return {
        "task": task.name,
        "split": split,
        "batches": stats.batches,
        "examples": stats.examples,
        "loss": stats.loss,
        "metric": {"name": name, "higher_is_better": higher, "tolerance": metric.tolerance, "unpruned": unpruned[name]},
        "unpruned_metrics": unpruned,
        "kinds": {
            kind: {
                "layers": shapes[kind][0],
                "heads": shapes[kind][1],
                "importance": _listed(stats.importance[kind]),
                "importance_raw": _listed(stats.raw_importance[kind]),
                "entropy": _listed(stats.entropy[kind]),
                "distance": _listed(stats.distance[kind]),
                # Voita et al.'s positional heads: the share of tokens whose most attended key is i - 1, i + 1, the first
                "roles": {role: _listed(share) for role, share in stats.roles[kind].items()} if kind in stats.roles else None,
            }
            for kind in shapes
        },
        "order": [f"{k}.{l}.{h}" for k, l, h in order],
        "pruning": {
            "fractions": fractions,
            "heads_removed": [pruning.count_at(f, total) for f in fractions],
            "by_importance": by_importance,
            "random": {"seeds": list(range(random_orders)), "values": random_values, **(band or {})},
            "prunable_by_importance": pruning.prunable(fractions, by_importance, metric),
            "prunable_random": [pruning.prunable(fractions, values, metric) for values in random_values],
            "per_kind": per_kind,
            "most_sensitive_kind": most_sensitive,
        },
        "evaluations": evaluator.calls,
    }


def figures(report: Dict[str, Any], title: str) -> Dict[str, bytes]:
    """heads.png (per kind: importance, entropy, distance) and pruning.png, as PNG bytes."""
    from attnlab import plots

    grids = {
        kind: {measure: (None if info[measure] is None else np.array(info[measure])) for measure in ("importance", "entropy", "distance")}
        for kind, info in report["kinds"].items()
    }
    curve = report["pruning"]
    metric = report["metric"]
    lines = {"by ascending importance": curve["by_importance"]}
    band = curve["random"] if curve["random"]["values"] else None
    return {
        "heads.png": plots.render_png(plots.head_grid_figure(grids, f"{title}: importance (Michel et al., per-layer normalised), entropy (nats), distance (positions)"), dpi=110),
        "pruning.png": plots.render_png(
            plots.pruning_figure(curve["fractions"], lines, band, metric["unpruned"], metric["tolerance"], metric["higher_is_better"], f"{report['split']} {metric['name']}", f"{title}: pruning heads"),
            dpi=110,
        ),
    }


def log_to_wandb(report: Dict[str, Any], images: Dict[str, bytes], out: Path, ckpt: str, project: str) -> str:
    """The report as a W&B run (job_type heads): the figures, a table per head, the curve, the
    prunable fractions in the summary. -> the run's directory."""
    import wandb

    from attnlab import plots
    from attnlab.run.wandb_setup import ensure_wandb_mode

    ensure_wandb_mode()
    run = wandb.init(project=project, job_type="heads", dir=str(out), name=f"heads {Path(ckpt).name}", config={"checkpoint": str(ckpt), "split": report["split"], "task": report["task"], "batches": report["batches"]})
    heads = wandb.Table(columns=["kind", "layer", "head", "importance", "importance_raw", "entropy", "distance"])
    for kind, info in report["kinds"].items():
        for layer in range(info["layers"]):
            for head in range(info["heads"]):
                value = lambda key: None if info[key] is None else info[key][layer][head]  # noqa: E731
                heads.add_data(kind, layer, head, value("importance"), value("importance_raw"), value("entropy"), value("distance"))
    curve = report["pruning"]
    table = wandb.Table(columns=["fraction", "by_importance", "random_mean"], data=[[f, v, m] for f, v, m in zip(curve["fractions"], curve["by_importance"], curve["random"].get("mean") or [None] * len(curve["fractions"]))])
    run.log({
        "heads/table": heads,
        "heads/pruning": table,
        "heads/pruning_chart": wandb.plot.line(table, "fraction", "by_importance", title=f"{report['metric']['name']} as heads are switched off"),
        **{f"heads/figure_{name[:-4]}": wandb.Image(plots.png_to_array(png)) for name, png in images.items()},
    })
    run.summary.update({
        "heads/unpruned": report["metric"]["unpruned"],
        "heads/prunable_by_importance": curve["prunable_by_importance"],
        "heads/prunable_random_mean": float(np.mean(curve["prunable_random"])) if curve["prunable_random"] else None,
        "heads/most_sensitive_kind": curve["most_sensitive_kind"],
    })
    directory = run.dir
    wandb.finish()
    return str(Path(directory).parent)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-heads", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint (.ckpt) of a model with attention heads")
    parser.add_argument("--split", choices=SPLITS, default="val", help="the split to measure and prune on (default: val)")
    parser.add_argument("--out", type=args_.output_dir, default=Path("heads"), help="the directory for heads.json, heads.png and pruning.png (default: heads/)")
    parser.add_argument("--batches", type=args_.integer(1, 10**7), help="only the split's first N batches (default: all)")
    parser.add_argument("--metric", help="the evaluation's metric to follow (default: the task's monitor: bleu, acc, loss)")
    parser.add_argument("--tolerance", type=args_.number(0, 1000), help="what counts as no loss, in the metric's units (default: 1 point: 1 BLEU, 0.01 accuracy; 1 %% of a loss)")
    parser.add_argument("--random-orders", type=args_.integer(0, 100), default=3, help="random pruning orders for the band (default: 3)")
    parser.add_argument("--seed", type=args_.seed, default=0, help="the seed of the evaluation and of the masked-LM masking (default: 0)")
    parser.add_argument("--wandb", action="store_true", help="also log everything to a W&B run (offline where no API key is configured)")
    parser.add_argument("--project", type=args_.name, default="attnlab", help="the W&B project with --wandb (default: attnlab)")
    args = parser.parse_args(argv)
    args_.check_output(parser, "--out", args.out, [Path(args.ckpt)])
    try:
        report, images = run(args)
    except AttnlabError as exc:
        print(f"attnlab-heads: {exc}", file=sys.stderr)
        return 2
    curve = report["pruning"]
    metric = report["metric"]
    random_note = f"; random orders: {', '.join(f'{f:.0%}' for f in curve['prunable_random'])}" if curve["prunable_random"] else ""
    print(
        f"{report['task']} on {report['split']} ({report['examples']} examples): {metric['name']} {metric['unpruned']:.4f} unpruned; "
        f"prunable within {metric['tolerance']:.3g}: {curve['prunable_by_importance']:.0%} of the heads by importance{random_note}"
        + (f"; most sensitive attention: {curve['most_sensitive_kind']}" if curve["most_sensitive_kind"] else "")
    )
    print(f"wrote {args.out / 'heads.json'}, {args.out / 'heads.png'}, {args.out / 'pruning.png'}" + (f"; W&B run in {report['wandb_dir']}" if report.get("wandb_dir") else ""))
    return 0


def run(args: argparse.Namespace):
    import lightning as L

    from attnlab.data.loading import load_data
    from attnlab.heads.gates import require_heads
    from attnlab.tasks.checkpoints import load_task

    task = load_task(args.ckpt)
    require_heads(task.model, args.ckpt)  # before any data is read
    data_spec = task.hparams.get("data")
    if not data_spec:
        raise ConfigError(f"{args.ckpt} records no data config: it cannot say which split to measure")
    datamodule = load_data(data_spec, "test", **task.data_overrides())
    loader = datamodule.test_dataloader() if args.split == "test" else datamodule.val_dataloader()
    L.seed_everything(args.seed, verbose=False)
    report = analyse(task, loader, args.split, args.batches, args.metric, args.tolerance, args.random_orders, progress=lambda line: print(line, file=sys.stderr, flush=True))
    report["checkpoint"] = str(args.ckpt)
    args.out.mkdir(parents=True, exist_ok=True)
    images = figures(report, Path(args.ckpt).name)
    for name, png in images.items():
        (args.out / name).write_bytes(png)
    if args.wandb:
        report["wandb_dir"] = log_to_wandb(report, images, args.out, args.ckpt, args.project)
    (args.out / "heads.json").write_text(json.dumps(report, indent=1) + "\n")
    return report, images


if __name__ == "__main__":
    sys.exit(main())

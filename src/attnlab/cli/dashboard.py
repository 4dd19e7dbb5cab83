"""W&B dashboards as code: one command turns a sweep (a W&B group) into a saved workspace or report,
built with W&B's own library for that (``pip install 'attnlab[dashboard]'``: wandb-workspaces).

    attnlab-dashboard --entity E --project attnlab --group ablation                  # a workspace
    attnlab-dashboard --entity E --project attnlab --group ablation --kind report
    attnlab-dashboard --entity E --project attnlab --group ablation --dry-run ws.json # no network

The panels follow the sweep's task (``--task``, default translation): its optimised metric, its
report columns, its curves (BLEU by length, loss by position) and its images (attention heatmaps,
a confusion matrix) — the keys its runs log. Saving needs W&B online; ``--dry-run FILE`` builds
the same object and writes its specification as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from attnlab import arguments as args_
from attnlab import components
from attnlab.errors import AttnlabError, ConfigError
from attnlab.run.results import AXES

KINDS = ("workspace", "report")
INSTALL = "pip install 'attnlab[dashboard]'  (wandb-workspaces)"
STEP = "trainer/global_step"


def panel_plan(task_class: Any) -> Dict[str, Any]:
    """What a sweep of this task shows, as plain data: metric keys exactly as its runs log them."""
    metrics = [key for _, key, _ in task_class.report_columns]
    headline = next((k for k in metrics if k.startswith("test/")), task_class.monitor)
    return {
        "monitor": task_class.monitor,
        "headline": headline,
        # the runs table's column ids: W&B stores a config key's value under <key>.value
        # each run's 95 % bootstrap interval of the headline over its test examples sits beside it
        "table_columns": [
            *(f"config:{a}.value" for a in ("task", *AXES, "seed")),
            *(f"summary:{k}" for k in metrics),
            *(f"summary:{headline}_ci_{end}" for end in ("low", "high")),
            "summary:summary/tokens_per_sec",
        ],
        "bars": [{"metric": task_class.monitor, "axis": axis} for axis in AXES[:3]] + [{"metric": headline, "axis": axis} for axis in AXES[:3]],
        "parallel": [*(f"config:{a}" for a in AXES[:3]), f"summary:{headline}"],
        "curves": [{"table": f"test/{name}", "x": x, "y": y} for name, (x, y) in task_class.curve_axes.items()],
        "images": [f"{split}/{name}" for split in ("test", "val") for name in task_class.figure_keys],
        "losses": ["train/loss", "val/loss"],
        "throughput": ["train/tokens_per_sec"],
    }


def _import_workspaces():
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError:
        raise ConfigError(f"attnlab-dashboard needs W&B's wandb-workspaces library: {INSTALL}") from None
    return ws, wr


def _metric(accessor: str, wr):
    kind, _, key = accessor.partition(":")
    return wr.Config(key) if kind == "config" else wr.SummaryMetric(key)


def panels(plan: Dict[str, Any], wr) -> Dict[str, List[Any]]:
    """The panels by section: the axes, the curves, the figures, training."""
    axes = [
        # error bars: the standard error of the mean over the group's runs (W&B's nearest to an
        # interval; the sweep report gives the 95 % t-interval and the paired tests)
        wr.BarPlot(title=f"{b['metric']} by {b['axis']} (mean, error bars ± 1 standard error over runs)", metrics=[b["metric"]], groupby=wr.Config(b["axis"]), groupby_aggfunc="mean", groupby_rangefunc="stderr")
        for b in plan["bars"]
    ]
    axes.append(wr.ParallelCoordinatesPlot(title="axes and the result", columns=[wr.ParallelCoordinatesPlotColumn(metric=_metric(c, wr)) for c in plan["parallel"]]))
    curves = [
        wr.CustomChart(query={"summaryTable": {"tableKey": c["table"]}}, chart_name="wandb/line/v0", chart_fields={"x": c["x"], "y": c["y"], "groupKeys": "runSets"}, chart_strings={"title": f"{c['table']}: {c['y']} by {c['x']}"})
        for c in plan["curves"]
    ]
    figures = [wr.MediaBrowser(title=key, media_keys=[key], mode="gallery", gallery_axis="run") for key in plan["images"]]
    training = [
        wr.LinePlot(title="losses by configuration", x=STEP, y=plan["losses"], groupby_aggfunc="mean", groupby_rangefunc="stddev"),
        wr.LinePlot(title="training tokens per second", x=STEP, y=plan["throughput"], groupby_aggfunc="mean"),
    ]
    return {"by axis": axes, "curves": curves, "attention and figures": figures, "training": training}


def group_filter(group: str) -> str:
    return f"Metric('Group') = '{group}'"


def build(entity: str, project: str, group: str, task: str = "translation", kind: str = "workspace"):
    """The workspace or report object for one sweep group (nothing is sent anywhere)."""
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    ws, wr = _import_workspaces()
    plan = panel_plan(components.lookup("task", task, "--task"))
    sections = panels(plan, wr)
    grouping = [ws.Config(a) for a in AXES[:3]]  # seeds of one configuration aggregate together
    if kind == "workspace":
        return ws.Workspace(
            entity=entity,
            project=project,
            name=f"attnlab sweep {group}",
            sections=[ws.Section(name=name, panels=items, is_open=True) for name, items in sections.items() if items],
            runset_settings=ws.RunsetSettings(filters=group_filter(group), groupby=grouping, pinned_columns=plan["table_columns"]),
        )
    runset = wr.Runset(entity=entity, project=project, name=group, filters=group_filter(group), groupby=[f"config.{a}" for a in AXES[:3]], pinned_columns=plan["table_columns"])
    blocks: List[Any] = [wr.H1(text=f"attnlab sweep {group}"), wr.P(text=f"Task {task}; optimised metric {plan['monitor']}. Every run of the W&B group {group}, seeds aggregated.")]
    for name, items in sections.items():
        if items:
            blocks += [wr.H2(text=name), wr.PanelGrid(runsets=[runset], panels=items)]
    return wr.Report(entity=entity, project=project, title=f"attnlab sweep {group}", blocks=blocks)


OFFLINE_PROJECT_ID = "<the project's id, looked up when saved>"


def specification(obj) -> Dict[str, Any]:
    """The object's JSON specification, as W&B would store it, built without network: a report's
    run sets carry their project's server-side id, which only saving looks up."""
    from unittest import mock

    from wandb_workspaces.reports.v2 import interface

    offline = mock.patch.multiple(interface, _get_api=lambda: None, execute_graphql=lambda *a, **k: {"project": {"internalId": OFFLINE_PROJECT_ID}})
    with offline:
        return obj._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def save(obj) -> str:
    from attnlab.run.wandb_setup import ensure_wandb_mode

    if ensure_wandb_mode() != "online":
        raise ConfigError(
            "saving a dashboard needs W&B online: run `wandb login` (or set WANDB_API_KEY) and unset "
            "WANDB_MODE=offline; --dry-run FILE writes the specification without network"
        )
    obj.save()
    return obj.url


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-dashboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entity", required=True, type=args_.name)
    parser.add_argument("--project", required=True, type=args_.name)
    parser.add_argument("--group", required=True, type=args_.name, help="the sweep's W&B group (sweep_name, or <task_name>-<sweep dir>)")
    parser.add_argument("--task", default="translation", help="the sweep's task: its metrics and figures make the panels")
    parser.add_argument("--kind", default="workspace", choices=KINDS)
    parser.add_argument("--dry-run", type=args_.output_file(".json"), metavar="FILE", help="write the specification as JSON instead of saving")
    args = parser.parse_args(argv)
    try:
        obj = build(args.entity, args.project, args.group, args.task, args.kind)
        if args.dry_run:
            spec = specification(obj)
            args.dry_run.write_text(json.dumps(spec, indent=2) + "\n")
            titles = [f"  {p['viewType']}: {panel_title(p)}" for p in _panels_of(spec)]
            print("\n".join([f"wrote {args.dry_run}: the {args.kind} for W&B group {args.group}, {len(titles)} panels", *titles]))
        else:
            print(f"saved the {args.kind}: {save(obj)}")
    except AttnlabError as exc:
        print(f"attnlab-dashboard: {exc}", file=sys.stderr)
        return 2
    return 0


def logged_keys(spec: Dict[str, Any]) -> Dict[str, set]:
    """The keys a specification reads from runs: ``config`` keys and logged (history/summary) keys."""
    keys: Dict[str, set] = {"config": set(), "logged": set()}

    def accessor(column: str) -> None:
        section, _, name = column.partition(":")
        if section in keys or section == "summary":
            keys["config" if section == "config" else "logged"].add(name[: -len(".value")] if name.endswith(".value") else name)

    for panel in _panels_of(spec):
        config = panel["config"]
        keys["logged"].update(config.get("metrics", []), config.get("mediaKeys", []))
        if config.get("xAxis"):
            keys["logged"].add(config["xAxis"])
        for column in config.get("columns", []):
            accessor(column["accessor"])
        for query in _find(config.get("userQuery", {}), "tableKey"):
            keys["logged"].add(query)
    for pinned in _find(spec, "columnPinned"):
        for column in pinned:
            if not column.startswith("run:"):
                accessor(column)
    return keys


def _find(spec: Any, name: str):
    """Every value of a key ``name`` (or of an argument named so) anywhere in a specification."""
    if isinstance(spec, dict):
        if name in spec:
            yield spec[name]
        if spec.get("name") == name and "value" in spec:
            yield spec["value"]
        for value in spec.values():
            yield from _find(value, name)
    elif isinstance(spec, list):
        for value in spec:
            yield from _find(value, name)


def panel_title(panel: Dict[str, Any]) -> str:
    config = panel["config"]
    return config.get("chartTitle") or config.get("stringSettings", {}).get("title") or ""


def _panels_of(spec: Any):
    """Every panel config in a specification (workspace or report), wherever it nests."""
    if isinstance(spec, dict):
        if "viewType" in spec and "config" in spec:
            yield spec
        for value in spec.values():
            yield from _panels_of(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _panels_of(value)


if __name__ == "__main__":
    sys.exit(main())

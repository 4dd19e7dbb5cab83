"""The summary a finished job prints: its final metrics and where its outputs are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from attnlab.errors import AttnlabError, CheckpointError, ConfigError, DataError
from attnlab.run.results import RunResult

_KIND = {ConfigError: "invalid configuration", DataError: "data error", CheckpointError: "checkpoint error"}


def user_error(exc: AttnlabError, prog: str = "attnlab") -> str:
    """The one line a user's mistake prints: ``attnlab: invalid configuration: <what to change>``."""
    kind = next((name for cls, name in _KIND.items() if isinstance(exc, cls)), "error")
    return f"{prog}: {kind}: {exc}"


def print_result(result: RunResult) -> None:
    table = Table(title="test and final validation metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    intervals = (result.extras or {}).get("intervals") or {}
    if intervals:
        table.add_column("95 % interval (test examples)", justify="right")

    def number(value: float) -> str:
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"

    for key, value in sorted(result.metrics.items()):
        bound = intervals.get(key)
        table.add_row(key, number(value), *([f"[{number(bound['low'])}, {number(bound['high'])}]" if bound else ""] if intervals else []))
    tps = result.tokens_per_sec
    table.add_row("tokens/s (train)", f"{tps:,.0f}" if tps else "-", *([""] if intervals else []))
    table.add_row("wall time (s)", f"{result.wall_time_s:.1f}", *([""] if intervals else []))
    console = Console()
    console.print(f"[bold]{result.run_name}[/bold]: {result.params:,} parameters, {result.global_step} steps")
    console.print(table)
    if (result.extras or {}).get("precision"):
        console.print(f"precision: {result.extras['precision']}", markup=False, highlight=False)
    sample = (result.extras or {}).get("sample")
    if sample:
        console.print("[bold]a sample[/bold] (task.prompt, the last evaluation):")
        console.print(sample, markup=False, highlight=False)
    predictions = sorted(p.name for p in Path(result.output_dir).glob("test_*.txt"))
    console.print(f"outputs: {result.output_dir}  ({', '.join(['metrics.json', 'checkpoints/', *predictions])})")

"""The summary a finished job prints: its test metrics and where its outputs are."""

from __future__ import annotations

from typing import Any, Dict

from rich.console import Console
from rich.table import Table


def print_result(result: Dict[str, Any]) -> None:
    table = Table(title="test and final validation metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(result["metrics"].items()):
        table.add_row(key, f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}")
    tps = result.get("tokens_per_sec")
    table.add_row("tokens/s (train)", f"{tps:,.0f}" if tps else "-")
    table.add_row("wall time (s)", f"{result['wall_time_s']:.1f}")
    console = Console()
    console.print(f"[bold]{result['run_name']}[/bold]: {result['params']:,} parameters, {result['global_step']} steps")
    console.print(table)
    console.print(f"outputs: {result['output_dir']}  (metrics.json, checkpoints/, test_hypotheses.txt)")

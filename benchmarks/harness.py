"""What every benchmark here shares: variants measured side by side in one run, the order rotating
each round (the machines are shared and noisy: a slow minute hits every variant alike), ratios
taken per round and reported as median with their min-max spread, and results written as JSON
under benchmarks/results/ beside the console table (the README quotes those files)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

RESULTS = Path(__file__).parent / "results"


def cpu_flags() -> list:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2")))


def rotate(variants: Dict[str, Any], rounds: int, measure: Callable[[Any], float]) -> Dict[str, List[float]]:
    """measure(variant) for every variant in every round, the starting variant moving by one each
    round; -> name -> one result per round."""
    names = list(variants)
    results: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(measure(variants[name]))
    return results


def seconds(fn: Callable[[], Any], repeats: int = 1) -> float:
    """Median wall seconds of ``repeats`` calls of fn."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_time(task, batch, steps: int, bf16: bool = False) -> float:
    """Median seconds of a task's training step (forward, loss, backward, AdamW) on one batch."""
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-5)
    task.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = task.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ratio_summary(numerator: List[float], denominator: List[float]) -> Dict[str, float]:
    """Per-round ratios (same round, so the same machine state): median, min, max."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def spread(r: Dict[str, float]) -> str:
    """A ratio as the tables print it: median with its min-max over rounds."""
    return f"×{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"


def environment(rounds: int) -> Dict[str, Any]:
    return {"environment": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(), "rounds": rounds, "order": "order rotated each round"}}


def command_line() -> str:
    """The command this process runs, as one types it: what a reader reruns to check a number."""
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def publish(name: str, title: str, rows: List[List[str]], report: Dict[str, Any]) -> Path:
    """Print the benchmark's table and write it, with everything measured and the command that
    measured it, to results/<name>.json; ``make bench`` renders docs/benchmarks.md from those files
    (benchmarks/report.py)."""
    command = command_line()
    env = report.get("environment") or {}
    print(f"{title}\n  torch {env.get('torch')}, {env.get('threads')} threads, cpu flags {' '.join(env.get('cpu_flags') or []) or '-'}; "
          f"{env.get('rounds')} rounds, {env.get('order')}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"title": title, "command": command, "rows": rows, **report}, indent=2) + "\n")
    print(f"wrote {out}")
    return out

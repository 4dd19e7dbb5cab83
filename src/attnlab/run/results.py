"""What a job produced, in one schema: ``metrics.json`` in every run directory.

Training, evaluation (eval.py) and a failed job all write a :class:`RunResult` through
:meth:`RunResult.write`; the sweep report reads them back with :meth:`RunResult.read`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from attnlab.schema import Spec, kind_of, validate
from attnlab.stats.examples import DESCRIPTION as EXAMPLES

AXES = ("arch", "attention", "pos_enc", "data")
FILE_NAME = "metrics.json"


@dataclass
class RunResult:
    status: str  # "ok" or "failed"
    kind: str = "train"  # "train" or "eval"
    task: Optional[str] = None  # the task's registered name
    choices: Dict[str, Optional[str]] = field(default_factory=dict)  # arch, attention, pos_enc, data
    seed: Optional[int] = None
    run_name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    overrides: List[str] = field(default_factory=list)  # the job's command-line overrides
    params: Optional[int] = None
    metrics: Dict[str, float] = field(default_factory=dict)  # "val/bleu", "test/loss", ...
    # per-split curves (bleu_by_length: {split: rows}), the task's scoring signature, eval settings
    extras: Dict[str, Any] = field(default_factory=dict)
    report_columns: List[List[Any]] = field(default_factory=list)  # [heading, metric key, higher is better]
    tokens_per_sec: Optional[float] = None
    wall_time_s: Optional[float] = None
    peak_memory_mib: Optional[float] = None  # what the job added at its peak (run/memory.py: PeakMemory)
    global_step: Optional[int] = None
    checkpoint: Optional[str] = None  # the best checkpoint (train) or the one evaluated (eval)
    output_dir: Optional[str] = None
    error: Optional[str] = None

    def metric(self, key: str) -> Optional[float]:
        """A metric (``val/bleu``) or a top-level number (``tokens_per_sec``); None when absent or NaN."""
        value = self.metrics.get(key) if "/" in key else getattr(self, key, None)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "RunResult":
        """A result from its JSON form; raises ValueError naming the first key of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping at the top level, got {kind_of(data)}")
        data = dict(data)
        if "choices" not in data:  # attnlab 0.1 wrote the choices and extras at the top level
            data["choices"] = {axis: data.pop(axis, None) for axis in AXES}
            extras = {k: data.pop(k) for k in ("bleu_by_length", "bleu_signature") if k in data}
            data["extras"] = {**(data.get("extras") or {}), **extras}
            data["checkpoint"] = data.pop("best_checkpoint", data.get("checkpoint"))
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key, value in data.items():
            check_field(key, value)
        return cls(**data)

    @classmethod
    def read(cls, path: str | Path) -> "RunResult":
        """Raises ValueError (naming the file, and the key) when the file is not a readable result."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable ({exc})") from None
        if not isinstance(data, dict) or "status" not in data:
            raise ValueError(f"{path}: not an attnlab {FILE_NAME} (no status)")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


# -- the schema of metrics.json, checked on read: a report never meets a value of the wrong type ----
# (the spec language: attnlab.schema)
ROW: Spec = {"map": "scalar"}
INTERVAL: Spec = {"strict": {"low": "number", "high": "number", "method": "str"}}
CURVE: Spec = {"map": {"list": ROW}}  # {split: [row, ...]}
BLEU_ROW: Spec = {"record": {"min_len": "number", "n": "int", "bleu": "number", "exact_match": "number", "bucket": "str"}}
EXTRAS: Spec = {
    "record": {
        "bleu_by_length": {"map": {"list": BLEU_ROW}},
        "data_sizes": {"map": "int"},
        "train_length_range": {"pair": "number"},
        "bleu_signature": "str",
        "precision": "str",
        "examples": {"map": EXAMPLES},
        "intervals": {"map": INTERVAL},
    }
}
SCHEMA: Dict[str, Spec] = {
    "status": ("ok", "failed"),
    "kind": ("train", "eval"),
    "task": {"optional": "str"},
    "choices": {"map": {"optional": "str"}},
    "seed": {"optional": "int"},
    "run_name": {"optional": "str"},
    "tags": {"list": "scalar"},
    "overrides": {"list": "str"},
    "params": {"optional": "int"},
    "metrics": {"map": {"optional": "number"}},  # NaN included: a diverged evaluation writes it
    "extras": EXTRAS,
    "report_columns": {"list": {"row": ["str", "str", "bool"]}},
    "tokens_per_sec": {"optional": "number"},
    "wall_time_s": {"optional": "number"},
    "peak_memory_mib": {"optional": "number"},
    "global_step": {"optional": "int"},
    "checkpoint": {"optional": "str"},
    "output_dir": {"optional": "str"},
    "error": {"optional": "str"},
}


def _other_extra(key: str, value: Any) -> Spec:
    """Any extra the schema does not name: a curve when it has a curve's shape ({split: [rows]})."""
    looks_like_curve = isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values())
    return CURVE if looks_like_curve else "any"


def check_field(key: str, value: Any) -> None:
    validate(value, SCHEMA[key], key, _other_extra)

"""Per-example outputs of an evaluated split: ``<split>_examples.jsonl`` in the run directory, one
JSON object per example in the split's order, and its description in metrics.json
(``extras.examples.<split>``): the file, the number of examples, which fields identify an example,
a fingerprint of those fields over the whole split, and which measure
(:mod:`attnlab.stats.measures`) recomputes each metric from the rows.

Two runs can be compared example by example only when their fingerprints agree: the same
examples, in the same order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from attnlab.schema import Spec
from attnlab.stats.measures import measure

# how metrics.json describes a split's per-example file (checked on reading, attnlab.schema)
DESCRIPTION: Spec = {
    "strict": {
        "file": "str",
        "n": "int",
        "fingerprint": "str",
        "identity": {"list": "str"},
        "measures": {"map": "str"},
    }
}


def file_name(split: str) -> str:
    return f"{split}_examples.jsonl"


def fingerprint(rows: Sequence[Dict[str, Any]], identity: Sequence[str]) -> str:
    """sha256 over the identifying fields of every row, in order (16 hex digits)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.get(f) for f in identity], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def describe(split: str, rows: Sequence[Dict[str, Any]], identity: Sequence[str], measures: Dict[str, str]) -> Dict[str, Any]:
    return {"file": file_name(split), "n": len(rows), "fingerprint": fingerprint(rows, identity), "identity": list(identity), "measures": dict(measures)}


def write(directory: Path, split: str, rows: Sequence[Dict[str, Any]]) -> Path:
    path = Path(directory) / file_name(split)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@dataclass
class ExampleSet:
    """A run's per-example rows of one split, read back and checked."""

    path: Path
    rows: List[Dict[str, Any]]
    identity: List[str]
    fingerprint: str
    measures: Dict[str, str]  # metric key ("test/bleu") -> measure name


def load(run_dir: Path, description: Dict[str, Any]) -> ExampleSet:
    """The rows a metrics.json describes; ValueError naming the file (and line) when they are
    missing, malformed, lack a field a measure reads, or do not match the description."""
    path = Path(run_dir) / description["file"]
    if Path(description["file"]).is_absolute() or ".." in Path(description["file"]).parts:
        raise ValueError(f"{run_dir}/metrics.json: extras.examples names {description['file']!r}, not a file of the run directory")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from None
    needed = {"id", *description["identity"]}
    for name in description["measures"].values():
        try:
            needed.update(measure(name).fields)
        except ValueError as exc:
            raise ValueError(f"{run_dir}/metrics.json: extras.examples: {exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: not a JSON object")
        missing = sorted(needed - set(row))
        if missing:
            raise ValueError(f"{path}:{number}: no {', '.join(missing)}")
        for key in ("nll", "total", "correct", "bytes"):
            if key in needed and (not isinstance(row[key], (int, float)) or isinstance(row[key], bool) or row[key] != row[key]):
                raise ValueError(f"{path}:{number}: {key} must be a number, got {json.dumps(row[key])[:40]}")
        rows.append(row)
    if len(rows) != description["n"]:
        raise ValueError(f"{path}: {len(rows)} examples, but metrics.json says {description['n']} (a truncated or replaced file)")
    found = fingerprint(rows, description["identity"])
    if found != description["fingerprint"]:
        raise ValueError(f"{path}: its examples are not the ones metrics.json describes (fingerprint {found}, recorded {description['fingerprint']})")
    return ExampleSet(path, rows, list(description["identity"]), found, dict(description["measures"]))


def first_difference(a: ExampleSet, b: ExampleSet) -> Optional[str]:
    """Why two example sets are not the same test set (None when they are)."""
    if a.identity != b.identity:
        return f"{a.path} identifies examples by {', '.join(a.identity)}, {b.path} by {', '.join(b.identity)}"
    if a.fingerprint == b.fingerprint:
        return None
    if len(a.rows) != len(b.rows):
        return f"{a.path} has {len(a.rows)} examples, {b.path} has {len(b.rows)}"
    for number, (x, y) in enumerate(zip(a.rows, b.rows), 1):
        for field in a.identity:
            if x.get(field) != y.get(field):
                return f"{a.path}:{number} and {b.path}:{number} differ in {field} ({json.dumps(x.get(field), ensure_ascii=False)[:40]} vs {json.dumps(y.get(field), ensure_ascii=False)[:40]})"
    return f"{a.path} and {b.path} differ"  # (not reached: equal fields give equal fingerprints)

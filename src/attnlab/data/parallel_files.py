"""``parallel_files``: the user's own parallel text, one of two layouts per split:

- a TSV file, one ``source<TAB>target`` pair per line;
- two line-aligned text files, ``{source: FILE, target: FILE}``.

A malformed line (wrong column count, bytes that are not UTF-8, an empty side) is an error that
names the file and line; with ``on_error: skip`` it is skipped and counted in a warning instead.
Nothing is ever dropped silently.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

from attnlab.errors import DataError
from attnlab.data.corpus_cache import SPLITS, Pairs

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")
SplitSpec = Union[str, os.PathLike, Mapping[str, str]]


class ParallelDataError(DataError):
    """A malformed line or file in the user's parallel data."""


@dataclass
class Skipped:
    count: int = 0
    first: List[str] = field(default_factory=list)  # the first few, for the warning

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(where)


def _existing(path: Union[str, os.PathLike], key: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{key}: no such file: {resolved}")
    return resolved


def _lines(path: Path) -> Iterator[Tuple[int, Optional[str], Optional[str]]]:
    """(line number, text, problem): text is None when the line is not UTF-8."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            yield lineno, text.rstrip("\r\n"), None


def _fail_or_skip(problem: str, on_error: str, skipped: Skipped) -> None:
    if on_error == "raise":
        raise ParallelDataError(f"{problem} (set data.corpus.on_error=skip to skip such lines)")
    skipped.add(problem)


def read_tsv(path: Path, on_error: str, skipped: Skipped) -> List[Tuple[str, str]]:
    pairs = []
    for lineno, text, problem in _lines(path):
        if problem is None:
            fields = text.split("\t")
            if len(fields) != 2:
                problem = f"expected 2 tab-separated columns (source, target), found {len(fields)}"
            elif not fields[0].strip() or not fields[1].strip():
                problem = f"empty {'source' if not fields[0].strip() else 'target'}"
        if problem is not None:
            _fail_or_skip(f"{path}:{lineno}: {problem}", on_error, skipped)
            continue
        pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def read_aligned(source: Path, target: Path, on_error: str, skipped: Skipped) -> List[Tuple[str, str]]:
    src_lines, tgt_lines = list(_lines(source)), list(_lines(target))
    if len(src_lines) != len(tgt_lines):
        # misaligned files cannot be repaired by skipping lines: always an error
        raise ParallelDataError(f"{source} has {len(src_lines)} lines but {target} has {len(tgt_lines)}: the files must be line-aligned")
    pairs = []
    for (lineno, src, src_problem), (_, tgt, tgt_problem) in zip(src_lines, tgt_lines):
        problem = None
        if src_problem or tgt_problem:
            problem = f"{source if src_problem else target}:{lineno}: {src_problem or tgt_problem}"
        elif not src.strip() or not tgt.strip():
            problem = f"{source if not src.strip() else target}:{lineno}: empty line (the other file has text there)"
        if problem is not None:
            _fail_or_skip(problem, on_error, skipped)
            continue
        pairs.append((src.strip(), tgt.strip()))
    return pairs


def read(train: SplitSpec, val: SplitSpec, test: SplitSpec, on_error: str = "raise") -> Pairs:
    """Each split: a TSV path, or ``{source: PATH, target: PATH}`` for two line-aligned files."""
    if on_error not in ON_ERROR:
        raise ValueError(f"data.corpus.on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
    pairs: Dict[str, List[Tuple[str, str]]] = {}
    for split, spec in zip(SPLITS, (train, val, test)):
        key = f"data.corpus.{split}"
        skipped = Skipped()
        if isinstance(spec, Mapping):
            if set(spec) != {"source", "target"}:
                raise ValueError(f"{key} must be a TSV path or {{source: FILE, target: FILE}}; got keys {sorted(spec)}")
            pairs[split] = read_aligned(_existing(spec["source"], f"{key}.source"), _existing(spec["target"], f"{key}.target"), on_error, skipped)
        else:
            pairs[split] = read_tsv(_existing(spec, key), on_error, skipped)
        if skipped.count:
            log.warning("%s: skipped %d malformed line(s), e.g. %s", key, skipped.count, "; ".join(skipped.first))
        if not pairs[split]:
            raise ParallelDataError(f"{key}: no usable sentence pairs")
    return pairs

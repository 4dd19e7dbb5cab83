"""``parallel_files``: the user's own parallel text, one of two layouts per split:

- a TSV file, one ``source<TAB>target`` pair per line;
- two line-aligned text files, ``{source: FILE, target: FILE}``.

A malformed line (wrong column count, bytes that are not UTF-8, an empty side) is an error that
names the file and line; with ``on_error: skip`` it is skipped and counted in a warning instead.
Nothing is ever dropped silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Tuple, Union

from attnlab.data.corpus_cache import SPLITS, Pairs
from attnlab.data.user_files import UserDataError, Skipped, check_on_error, existing, fail_or_skip, lines, warn_skipped

SplitSpec = Union[str, os.PathLike, Mapping[str, str]]


def read_tsv(path: Path, on_error: str, skipped: Skipped) -> List[Tuple[str, str]]:
    pairs = []
    for lineno, text, problem in lines(path):
        if problem is None:
            fields = text.split("\t")
            if len(fields) != 2:
                problem = f"expected 2 tab-separated columns (source, target), found {len(fields)}"
            elif not fields[0].strip() or not fields[1].strip():
                problem = f"empty {'source' if not fields[0].strip() else 'target'}"
        if problem is not None:
            fail_or_skip(f"{path}:{lineno}: {problem}", on_error, skipped)
            continue
        pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def read_aligned(source: Path, target: Path, on_error: str, skipped: Skipped) -> List[Tuple[str, str]]:
    src_lines, tgt_lines = list(lines(source)), list(lines(target))
    if len(src_lines) != len(tgt_lines):
        # misaligned files cannot be repaired by skipping lines: always an error
        raise UserDataError(f"{source} has {len(src_lines)} lines but {target} has {len(tgt_lines)}: the files must be line-aligned")
    pairs = []
    for (lineno, src, src_problem), (_, tgt, tgt_problem) in zip(src_lines, tgt_lines):
        problem = None
        if src_problem or tgt_problem:
            problem = f"{source if src_problem else target}:{lineno}: {src_problem or tgt_problem}"
        elif not src.strip() or not tgt.strip():
            problem = f"{source if not src.strip() else target}:{lineno}: empty line (the other file has text there)"
        if problem is not None:
            fail_or_skip(problem, on_error, skipped)
            continue
        pairs.append((src.strip(), tgt.strip()))
    return pairs


def read(train: SplitSpec, val: SplitSpec, test: SplitSpec, on_error: str = "raise") -> Pairs:
    """Each split: a TSV path, or ``{source: PATH, target: PATH}`` for two line-aligned files."""
    check_on_error(on_error)
    pairs: Dict[str, List[Tuple[str, str]]] = {}
    for split, spec in zip(SPLITS, (train, val, test)):
        key = f"data.corpus.{split}"
        skipped = Skipped()
        if isinstance(spec, Mapping):
            if set(spec) != {"source", "target"}:
                raise ValueError(f"{key} must be a TSV path or {{source: FILE, target: FILE}}; got keys {sorted(spec)}")
            pairs[split] = read_aligned(existing(spec["source"], f"{key}.source"), existing(spec["target"], f"{key}.target"), on_error, skipped)
        else:
            pairs[split] = read_tsv(existing(spec, key), on_error, skipped)
        warn_skipped(key, skipped)
        if not pairs[split]:
            raise UserDataError(f"{key}: no usable sentence pairs")
    return pairs

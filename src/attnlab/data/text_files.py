"""``text_files``: the user's own texts for classification (or pre-training), per split:

- a TSV file, one ``text<TAB>label`` per line, or a CSV file (``.csv``: two columns, text and
  label; a first row ``text,label`` is a header);
- with ``labelled: false``, a plain text file, one text per line (masked-LM pre-training).

A malformed line (not UTF-8, wrong column count, an empty text or label) and a label that occurs
in val or test but never in train are errors naming the file and line; with ``on_error: skip``
malformed lines are skipped and counted in a warning instead.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Dict, List, Tuple, Union

from attnlab.data.corpus_cache import SPLITS, Pairs
from attnlab.data.user_files import Skipped, UserDataError, check_on_error, existing, fail_or_skip, lines, warn_skipped


def _fields(path: Path, text: str) -> List[str]:
    if path.suffix.lower() == ".csv":
        return next(csv.reader(io.StringIO(text)), [])
    return text.split("\t")


def read_file(path: Path, labelled: bool, on_error: str, skipped: Skipped) -> List[Tuple[str, str, int]]:
    """(text, label, line number) for every usable line."""
    rows = []
    for lineno, text, problem in lines(path):
        fields: List[str] = []
        if problem is None:
            if not labelled:
                fields = [text, ""]
                problem = None if text.strip() else "empty text"
            else:
                fields = _fields(path, text)
                if lineno == 1 and [f.strip().lower() for f in fields] == ["text", "label"]:
                    continue  # a CSV header
                if len(fields) != 2:
                    problem = f"expected 2 {'comma' if path.suffix.lower() == '.csv' else 'tab'}-separated columns (text, label), found {len(fields)}"
                elif not fields[0].strip() or not fields[1].strip():
                    problem = f"empty {'text' if not fields[0].strip() else 'label'}"
        if problem is not None:
            fail_or_skip(f"{path}:{lineno}: {problem}", on_error, skipped)
            continue
        rows.append((" ".join(fields[0].split()), fields[1].strip(), lineno))
    return rows


def read(train: Union[str, os.PathLike], val: Union[str, os.PathLike], test: Union[str, os.PathLike], labelled: bool = True, on_error: str = "raise") -> Pairs:
    check_on_error(on_error)
    texts: Dict[str, List[Tuple[str, str]]] = {}
    train_labels: set = set()
    for split, spec in zip(SPLITS, (train, val, test)):
        key = f"data.corpus.{split}"
        path = existing(spec, key)
        skipped = Skipped()
        rows = read_file(path, labelled, on_error, skipped)
        warn_skipped(key, skipped)
        if not rows:
            raise UserDataError(f"{key}: no usable texts in {path}")
        if split == "train":
            train_labels = {label for _, label, _ in rows}
        else:
            for _, label, lineno in rows:
                if labelled and label not in train_labels:
                    raise UserDataError(f"{path}:{lineno}: label {label!r} never occurs in the training file {train}")
        texts[split] = [(text, label) for text, label, _ in rows]
    return texts

"""``text_stream``: the user's own plain text for a language model, one file (or several) per
split, each read whole. Bytes that are not UTF-8 are an error naming the file and line."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple, Union

from attnlab.data.corpus_cache import SPLITS
from attnlab.data.user_files import UserDataError, existing, lines

Files = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def read(train: Files, val: Files, test: Files) -> Dict[str, List[Tuple[str, str]]]:
    documents: Dict[str, List[Tuple[str, str]]] = {}
    for split, spec in zip(SPLITS, (train, val, test)):
        paths = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
        documents[split] = []
        for i, path in enumerate(paths):
            key = f"data.corpus.{split}" + (f"[{i}]" if len(paths) > 1 else "")
            path = existing(path, key)
            text = []
            for lineno, line, problem in lines(path):
                if problem is not None:
                    raise UserDataError(f"{path}:{lineno}: {problem}")
                text.append(line)
            if not "".join(text).strip():
                raise UserDataError(f"{key}: {path} holds no text")
            documents[split].append(("\n".join(text), str(path)))
    return documents

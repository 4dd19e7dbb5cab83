"""Reading the user's own files line by line: a line that is not UTF-8 or malformed is an error
that names the file and line, or, with ``on_error: skip``, is skipped and counted in a warning.
Nothing is ever dropped silently."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

from attnlab.errors import DataError

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


class UserDataError(DataError):
    """A malformed line or file in the user's own data."""


@dataclass
class Skipped:
    count: int = 0
    first: List[str] = field(default_factory=list)  # the first few, for the warning

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(where)


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"data.corpus.on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")


def existing(path: Union[str, os.PathLike], key: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{key}: no such file: {resolved}")
    return resolved


def lines(path: Path) -> Iterator[Tuple[int, Optional[str], Optional[str]]]:
    """(line number, text, problem): text is None when the line is not UTF-8."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            yield lineno, text.rstrip("\r\n"), None


def fail_or_skip(problem: str, on_error: str, skipped: Skipped) -> None:
    if on_error == "raise":
        raise UserDataError(f"{problem} (set data.corpus.on_error=skip to skip such lines)")
    skipped.add(problem)


def warn_skipped(key: str, skipped: Skipped) -> None:
    if skipped.count:
        log.warning("%s: skipped %d malformed line(s), e.g. %s", key, skipped.count, "; ".join(skipped.first))

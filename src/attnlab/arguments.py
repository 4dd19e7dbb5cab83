"""The command-line tools' arguments, checked where they enter.

Each range is declared once, as an argparse ``type=`` function: argparse turns its refusal into one
line, ``attnlab-generate: error: argument --top-p: must be a number in (0, 1]; got '2'``, before
any checkpoint is read. Output paths are checked the same way (a directory, a missing directory,
an extension nothing writes), and :func:`check_output` refuses an output that is one of the
command's inputs, or (without ``--force``) a file that already exists.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range: a larger seed is silently replaced


def _interval(lo: Optional[float], hi: Optional[float], lo_open: bool, hi_open: bool) -> str:
    def show(bound: float) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{show(lo)}, {show(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {show(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {show(hi)}"
    return "finite"


def _ranged(convert: Callable[[str], float], what: str, inside: Callable[[float], bool], name: str) -> Callable[[str], float]:
    """An argparse type: ``convert`` the text, then refuse a value outside the range in one line."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not inside(value):
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def integer(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (either bound may be absent)."""
    inside = lambda v: (lo is None or v >= lo) and (hi is None or v <= hi)  # noqa: E731
    return _ranged(int, f"an integer {_interval(lo, hi, False, False)}", inside, "integer")


def number(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """A finite number in the interval (nan and inf are never accepted)."""

    def inside(v: float) -> bool:
        above_lo = lo is None or (v > lo if lo_open else v >= lo)
        below_hi = hi is None or (v < hi if hi_open else v <= hi)
        return math.isfinite(v) and above_lo and below_hi

    return _ranged(float, f"a number {_interval(lo, hi, lo_open, hi_open)}", inside, "number")


seed = integer(0, SEED_MAX)
probability_mass = number(0, 1, lo_open=True)  # top-p: (0, 1]


def temperature(text: str) -> float:
    """0 (greedy) or [0.01, 100]: below 0.01 the scaled logits overflow to inf and sampling fails."""
    value = number(0, 100)(text)
    if 0 < value < 0.01:
        raise argparse.ArgumentTypeError(f"must be 0 (greedy) or a number in [0.01, 100]; got {text!r}")
    return value


def name(text: str) -> str:
    """A name (a W&B entity, project or group): not empty, not only spaces."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory" if path.exists() else f"no such directory: {text}")
    return path


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """A file the command may create: not a directory, in a directory that exists and can be
    written, with one of ``suffixes`` (none given: any name)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        if path.is_dir() or text.endswith(os.sep):
            raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name")
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: the file name must end in {' or '.join(suffixes)}")
        _check_writable_parent(path, text)
        return path

    parse.__name__ = "output file"
    return parse


def output_dir(text: str) -> Path:
    """A directory the command writes into: an existing one, or a new one in a directory that exists."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    if not path.exists():
        _check_writable_parent(path, text)
    elif not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: this directory cannot be written")
    return path


def _check_writable_parent(path: Path, text: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: the directory {parent} cannot be written")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: this file cannot be written")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(parser: argparse.ArgumentParser, option: str, out: Path, inputs: Iterable[Path], force: Optional[bool] = None) -> None:
    """Refuse ``out`` when it is one of ``inputs`` (always: the command would destroy what it
    reads), or when it exists and ``force`` is False (None: the command overwrites its own outputs)."""
    for source in inputs:
        if same_file(out, Path(source)) or Path(out).resolve() == Path(source).resolve():
            parser.error(f"{option} {out} is one of this command's inputs; write elsewhere")
    if force is False and out.exists():
        parser.error(f"{option} {out} exists; pass --force to overwrite it")

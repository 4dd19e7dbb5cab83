"""Generated corpora are cached as TSV files (``split<TAB>source<TAB>target``) under logs/.

The file name carries a hash of the generator and its arguments, so changing a size or a seed
makes a new file; writes go through a temporary file and an atomic rename, so concurrent jobs of
a sweep never read a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, TextIO, Tuple

Pairs = Dict[str, List[Tuple[str, str]]]
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


def cache_path(cache_dir: str | os.PathLike, name: str, generator: Callable, kwargs: dict) -> Path:
    # a corpus module's CORPUS_VERSION changes when its builder's output does: old caches go stale
    corpus_version = getattr(sys.modules.get(generator.__module__), "CORPUS_VERSION", 0)
    key = json.dumps(
        {"fn": f"{generator.__module__}.{getattr(generator, '__qualname__', repr(generator))}", "kwargs": kwargs, "v": FORMAT_VERSION, "corpus": corpus_version},
        sort_keys=True,
        default=str,
    )
    return Path(cache_dir) / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.tsv"


def current_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A text file that appears at ``path`` whole or not at all: written to a temporary file
    beside it, then renamed, so concurrent jobs of a sweep never read half of it. Its mode is
    what ``open`` would have given it (0666 less the umask), not the temporary file's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            yield f
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_pairs(path: Path, pairs: Pairs) -> None:
    with atomic_writer(path) as f:
        for split in SPLITS:
            for src, tgt in pairs[split]:
                if "\t" in src + tgt or "\n" in src + tgt:
                    raise ValueError(f"a {split} pair contains a tab or newline: {src!r} -> {tgt!r}")
                f.write(f"{split}\t{src}\t{tgt}\n")


def read_pairs(path: Path) -> Pairs:
    pairs: Pairs = {s: [] for s in SPLITS}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[0] not in pairs or not fields[1] or not fields[2]:
                raise ValueError(
                    f"{path}:{lineno}: expected 'split<TAB>source<TAB>target' with split in {SPLITS}; "
                    f"got {line.rstrip()!r}. Delete the file to regenerate it."
                )
            pairs[fields[0]].append((fields[1], fields[2]))
    return pairs


def ensure_cached(cache_dir: str | os.PathLike, name: str, generator: Callable[..., Pairs], kwargs: dict) -> Path:
    """The cache file of this corpus, generated first if it is missing."""
    path = cache_path(cache_dir, name, generator, kwargs)
    if not path.exists():
        write_pairs(path, generator(**kwargs))
    return path


def load_or_generate(cache_dir: str | os.PathLike, name: str, generator: Callable[..., Pairs], kwargs: dict) -> Pairs:
    return read_pairs(ensure_cached(cache_dir, name, generator, kwargs))

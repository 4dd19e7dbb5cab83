"""``bible_genre``: a Bible verse -> the section of the Bible it comes from.

The verses are the ones the Bible translation corpus reads (:mod:`attnlab.data.bible`): English
(derived from the World English Bible) or, with ``language="es"``, Spanish (Reina-Valera 1909).
Eight sections, the usual grouping of the Christian canon by genre. Hebrews, anonymous, goes with
the general epistles rather than Paul's (as most modern scholarship has it).

Verses are split by whole chapter (a seeded shuffle of chapters), so neighbouring verses, which
share names and wording, never straddle splits.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from attnlab.data import bible

CORPUS_VERSION = bible.CORPUS_VERSION  # the verses are the Bible corpus's: rebuilt when it is
SECTIONS = {
    "law": "Gen Exod Lev Num Deut",
    "history": "Josh Judg Ruth 1Sam 2Sam 1Kgs 2Kgs 1Chr 2Chr Ezra Neh Esth",
    "wisdom": "Job Ps Prov Eccl Song",
    "prophets": "Isa Jer Lam Ezek Dan Hos Joel Amos Obad Jonah Mic Nah Hab Zeph Hag Zech Mal",
    "gospels": "Matt Mark Luke John",
    "acts": "Acts",
    "pauline": "Rom 1Cor 2Cor Gal Eph Phil Col 1Thess 2Thess 1Tim 2Tim Titus Phlm",
    "general_and_revelation": "Heb Jas 1Pet 2Pet 1John 2John 3John Jude Rev",
}
SECTION_OF = {book: section for section, books in SECTIONS.items() for book in books.split()}
LANGUAGES = ("en", "es")


def generate(
    seed: int, language: str = "en", val_fraction: float = 0.1, test_fraction: float = 0.1, sword_path: Optional[str] = None
) -> Dict[str, List[Tuple[str, str]]]:
    if language not in LANGUAGES:
        raise ValueError(f"data.corpus.language must be one of {', '.join(LANGUAGES)}; got {language!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("data.corpus.val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    chapters: Dict[Tuple[str, int], List[Tuple[str, str]]] = defaultdict(list)
    for verse in bible.build(sword_path):
        chapters[(verse.book, verse.chapter)].append((getattr(verse, language), SECTION_OF[verse.book]))
    order = sorted(chapters)
    random.Random(seed).shuffle(order)
    n_val, n_test = round(len(order) * val_fraction), round(len(order) * test_fraction)
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    return {split: [item for chapter in keys for item in chapters[chapter]] for split, keys in parts.items()}

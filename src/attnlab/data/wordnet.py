"""``wordnet``: a WordNet gloss -> its lexicographer class (noun.animal, noun.artifact, ...).

Reads Debian's ``wordnet-base`` (WordNet 3.0: ``apt-get install -y --no-install-recommends
wordnet-base``), the files ``data.noun``, ``data.verb``, ``data.adj``, ``data.adv``: one synset a
line, field 2 its lexicographer file number, the gloss after `` | ``; the licence header lines
begin with two spaces. ``pos="noun"`` gives the 26 noun classes (82,115 glosses), ``pos="all"``
all 45 classes. Every synset has one gloss, so splitting glosses splits synsets: the same synset is
never in two splits. The split is a fixed shuffle by ``seed``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PACKAGE = "wordnet-base"
INSTALL_HINT = f"apt-get install -y --no-install-recommends {PACKAGE}"
DEFAULT_PATHS = ("/usr/share/wordnet",)
POS_FILES = {"noun": ("data.noun",), "all": ("data.noun", "data.verb", "data.adj", "data.adv")}

# WordNet 3.0's lexicographer files, by number (the package's lexnames(5WN) page)
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)


def find_wordnet(wordnet_path: Optional[str] = None) -> Path:
    candidates = [wordnet_path] if wordnet_path else [os.environ.get("WNSEARCHDIR"), *DEFAULT_PATHS]
    for candidate in filter(None, candidates):
        root = Path(candidate).expanduser()
        if (root / "data.noun").is_file():
            return root
    looked = ", ".join(str(Path(c).expanduser()) for c in candidates if c)
    raise FileNotFoundError(
        f"data=wordnet needs WordNet's database files (data.noun, ...); not found under {looked}. "
        f"Install them with: sudo {INSTALL_HINT}  (or set data.corpus.wordnet_path)"
    )


def read_glosses(path: Path) -> List[Tuple[str, str]]:
    """(gloss, class name) for every synset of a ``data.*`` file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("  "):  # the licence
                continue
            fields = line.split(" ", 3)
            if len(fields) < 4 or " | " not in line:
                raise ValueError(f"{path}:{lineno}: not a WordNet synset line")
            number = int(fields[1])
            rows.append((line.split(" | ", 1)[1].strip(), LEXNAMES[number]))
    return rows


def generate(seed: int, pos: str = "noun", val_fraction: float = 0.05, test_fraction: float = 0.1, wordnet_path: Optional[str] = None) -> Dict[str, List[Tuple[str, str]]]:
    if pos not in POS_FILES:
        raise ValueError(f"data.corpus.pos must be one of {', '.join(POS_FILES)}; got {pos!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("data.corpus.val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    root = find_wordnet(wordnet_path)
    glosses = [row for name in POS_FILES[pos] for row in read_glosses(root / name)]
    random.Random(seed).shuffle(glosses)
    n_val, n_test = round(len(glosses) * val_fraction), round(len(glosses) * test_fraction)
    return {"val": glosses[:n_val], "test": glosses[n_val : n_val + n_test], "train": glosses[n_val + n_test :]}

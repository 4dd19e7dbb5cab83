"""``dates``: human-readable dates in eight locales -> ISO 8601 (character level).

Formats are the locales' full, long and medium styles (babel). Numeric-only renderings such as
German medium "03.07.2024" are left out: numeric dates are ambiguous across locales.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Dict, List, Tuple

from babel.dates import format_date

LOCALES = ("en_US", "en_GB", "es_ES", "es_MX", "fr_FR", "de_DE", "it_IT", "pt_BR")
STYLES = ("full", "long", "medium")
_FIRST, _LAST = dt.date(1900, 1, 1).toordinal(), dt.date(2099, 12, 31).toordinal()


def render(day: dt.date, locale: str, style: str) -> str | None:
    text = format_date(day, style, locale=locale)
    return text if any(c.isalpha() for c in text) else None


def generate(seed: int, train_size: int = 20000, val_size: int = 500, test_size: int = 1000) -> Dict[str, List[Tuple[str, str]]]:
    rng = random.Random(seed)
    total = train_size + val_size + test_size
    seen, pairs = set(), []
    while len(pairs) < total:
        day = dt.date.fromordinal(rng.randint(_FIRST, _LAST))
        text = render(day, rng.choice(LOCALES), rng.choice(STYLES))
        if text is None or text in seen:
            continue
        seen.add(text)
        pairs.append((text, day.isoformat()))
    return {
        "train": pairs[:train_size],
        "val": pairs[train_size : train_size + val_size],
        "test": pairs[train_size + val_size :],
    }

"""``numbers``: Spanish number words -> English number words (word level).

Numbers are drawn uniformly over digit counts (not over values), so sentence lengths spread from
one word to twenty and more; each split gets distinct numbers.
"""

from __future__ import annotations

import random
import re
from typing import Dict, List, Tuple

from num2words import num2words

# num2words keeps the full form "uno"/"veintiuno" before a multiplier noun; Spanish drops the
# final vowel there (apocope): "veintiún mil", "ciento un millones", "treinta y un mil".
_APOCOPE = re.compile(r"\b(veinti)?uno (?=mil\b|mill|bill)")


def spanish(n: int) -> str:
    return _APOCOPE.sub(lambda m: ("veintiún " if m.group(1) else "un "), num2words(n, lang="es"))


def english(n: int) -> str:
    return num2words(n, lang="en")


def sample_numbers(count: int, max_digits: int, rng: random.Random) -> List[int]:
    """``count`` distinct numbers, as evenly spread over digit counts 1..max_digits as they allow."""
    chosen: List[int] = []
    remaining = count
    for digits in range(1, max_digits + 1):
        low = 0 if digits == 1 else 10 ** (digits - 1)
        high = 10**digits - 1
        quota = min(remaining // (max_digits - digits + 1), high - low + 1)  # short counts run out
        picked = set()
        while len(picked) < quota:
            picked.add(rng.randint(low, high))
        chosen.extend(sorted(picked))
        remaining -= quota
    rng.shuffle(chosen)
    return chosen


def generate(seed: int, train_size: int = 20000, val_size: int = 500, test_size: int = 1000, max_digits: int = 13) -> Dict[str, List[Tuple[str, str]]]:
    if max_digits < 1 or max_digits > 15:
        raise ValueError(f"data.corpus.max_digits must be within 1..15; got {max_digits}")
    total = train_size + val_size + test_size
    numbers = sample_numbers(total, max_digits, random.Random(seed))
    if len(numbers) < total:
        raise ValueError(f"only {len(numbers)} distinct numbers have at most {max_digits} digits; lower the split sizes")
    pairs = [(spanish(n), english(n)) for n in numbers]
    return {
        "train": pairs[:train_size],
        "val": pairs[train_size : train_size + val_size],
        "test": pairs[train_size + val_size :],
    }

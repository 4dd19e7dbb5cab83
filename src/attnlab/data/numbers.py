"""``numbers``: Spanish number words -> English number words (word level).

Numbers are drawn uniformly over digit counts (not over values), so sentence lengths spread from
one word to twenty and more; each split gets distinct numbers.

For the extrapolation study two options: ``style="digits"`` says a number digit by digit
("tres cero siete" -> "three zero seven": ten words a side, so every length uses the same
vocabulary), and ``train_max_digits=N`` keeps training and validation numbers to N digits while
the test holds the longer ones, N+1 .. ``max_digits``.
"""

from __future__ import annotations

import random
import re
from typing import Dict, List, Optional, Tuple

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


SPANISH_DIGITS = "cero uno dos tres cuatro cinco seis siete ocho nueve".split()
ENGLISH_DIGITS = "zero one two three four five six seven eight nine".split()
STYLES = ("words", "digits")


def digit_by_digit(n: int) -> Tuple[str, str]:
    digits = [int(d) for d in str(n)]
    return " ".join(SPANISH_DIGITS[d] for d in digits), " ".join(ENGLISH_DIGITS[d] for d in digits)


def longer_numbers(count: int, min_digits: int, max_digits: int, rng: random.Random) -> List[int]:
    """``count`` distinct numbers, as many of each digit count min_digits..max_digits."""
    counts = range(min_digits, max_digits + 1)
    chosen: List[int] = []
    for i, digits in enumerate(counts):
        quota = count // len(counts) + (1 if i < count % len(counts) else 0)
        picked: set = set()
        while len(picked) < quota:
            picked.add(rng.randint(10 ** (digits - 1), 10**digits - 1))
        chosen.extend(sorted(picked))
    rng.shuffle(chosen)
    return chosen


def generate(
    seed: int,
    train_size: int = 20000,
    val_size: int = 500,
    test_size: int = 1000,
    max_digits: int = 13,
    train_max_digits: Optional[int] = None,
    style: str = "words",
) -> Dict[str, List[Tuple[str, str]]]:
    if style not in STYLES:
        raise ValueError(f"data.corpus.style must be one of {', '.join(STYLES)}; got {style!r}")
    if max_digits < 1 or (style == "words" and max_digits > 15):
        raise ValueError(f"data.corpus.max_digits must be within 1..15 (words) or at least 1 (digits); got {max_digits}")
    if train_max_digits is not None and not 1 <= train_max_digits < max_digits:
        raise ValueError(f"data.corpus.train_max_digits must be within 1..{max_digits - 1} (data.corpus.max_digits - 1); got {train_max_digits}")
    rng = random.Random(seed)
    seen = train_size + val_size
    if train_max_digits is None:
        numbers = sample_numbers(seen + test_size, max_digits, rng)
    else:  # the test holds the lengths training never saw
        numbers = sample_numbers(seen, train_max_digits, rng) + longer_numbers(test_size, train_max_digits + 1, max_digits, rng)
    if len(numbers) < seen + test_size:
        raise ValueError(f"only {len(numbers)} distinct numbers have at most {train_max_digits or max_digits} digits; lower the split sizes")
    say = digit_by_digit if style == "digits" else (lambda n: (spanish(n), english(n)))
    pairs = [say(n) for n in numbers]
    return {
        "train": pairs[:train_size],
        "val": pairs[train_size:seen],
        "test": pairs[seen:],
    }

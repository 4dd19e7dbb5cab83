"""``bible``: verse-aligned Spanish -> English from Debian's public-domain SWORD modules.

Spanish is the Reina-Valera 1909 (``spaRV1909eb``); English is derived from the World English
Bible (``engWEB2015eb``); the King James (``engKJV2006eb``) is only an alignment check. Install
them with ``apt-get install -y sword-text-sparv sword-text-web sword-text-kjv``.

Why it is not a plain zip of two modules:

- The Spanish module declares KJV versification but keeps the Hebrew numbering in ten chapters,
  so verses there are shifted by one (across chapter ends, too). The Spanish and KJV texts both
  carry Strong's lemma numbers; the overlap of two verses' Strong's sets tells whether they are
  the same verse in any language, so a low-overlap Spanish verse is moved to the neighbouring
  KJV reference it matches, or dropped. (WEB's own Strong's tags are unreliable: not used.)
- pysword's ``clean=True`` glues words ("Godcreated") and drops psalm titles, so the OSIS
  markup is stripped here (:func:`strip_osis`).

Run ``python -m attnlab.data.bible --out FILE`` to write the corpus as TSV
(``split, book, chapter, verse, es, en``). The English text is modified from the WEB (markup
removed, glossary cut), so it is named "derived from the World English Bible", not "WEB".
"""

from __future__ import annotations

import argparse
import csv
import functools
import html
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from attnlab import arguments as args_
from attnlab.data.corpus_cache import atomic_writer

CORPUS_VERSION = 2  # bump when the builder's output changes, so cached corpora are rebuilt
SPANISH, ENGLISH, CHECK = "spaRV1909eb", "engWEB2015eb", "engKJV2006eb"
PACKAGES = {SPANISH: "sword-text-sparv", ENGLISH: "sword-text-web", CHECK: "sword-text-kjv"}
INSTALL_HINT = "apt-get install -y " + " ".join(PACKAGES.values())
DEFAULT_SWORD_PATHS = ("/usr/share/sword", "~/.sword")

# whole books, so no verse of a held-out split has its neighbour in training
VALID_BOOKS = ("Ruth", "Eccl", "Joel", "Mark", "Phil", "Jas")
TEST_BOOKS = ("Jonah", "Song", "Lam", "John", "Col", "1Pet")
PAULINE = ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim", "Titus", "Phlm", "Heb")

Ref = Tuple[str, int, int]  # (OSIS book, chapter, verse)


@dataclass(frozen=True)
class AlignedVerse:
    split: str
    book: str
    chapter: int
    verse: int
    es: str
    en: str


# -- reading modules -----------------------------------------------------------------------------
def find_sword_path(sword_path: Optional[str] = None) -> Path:
    """The SWORD directory holding all three modules; the error names the packages to install."""
    candidates = [sword_path] if sword_path else [os.environ.get("SWORD_PATH"), *DEFAULT_SWORD_PATHS]
    for candidate in filter(None, candidates):
        root = Path(candidate).expanduser()
        if all(any((root / "mods.d" / f"{n}.conf").exists() for n in (name, name.lower())) for name in PACKAGES):
            return root
    looked = ", ".join(str(Path(c).expanduser()) for c in candidates if c)
    missing = ", ".join(f"{name} ({pkg})" for name, pkg in PACKAGES.items())
    raise FileNotFoundError(
        f"data=bible needs the SWORD modules {missing}; not found under {looked}. "
        f"Install them with: sudo {INSTALL_HINT}  (or set data.corpus.sword_path / $SWORD_PATH)"
    )


def read_module(name: str, sword_path: Path) -> Dict[Ref, str]:
    """Every non-empty verse of a module as raw OSIS, keyed by reference, in canonical order."""
    from pysword.modules import SwordModules

    modules = SwordModules(str(sword_path))
    modules.parse_modules()
    bible = modules.get_bible_from_module(name)
    # pysword decompresses a whole book block for every verse; each block once is ~50x faster
    bible._decompressed_text = functools.lru_cache(maxsize=None)(bible._decompressed_text)
    structure = bible.get_structure()
    verses: Dict[Ref, str] = {}
    for testament, books in structure.get_books().items():
        for book in books:
            offset = structure._book_offset(book.name)
            for chapter, count in enumerate(book.chapter_lengths, 1):
                for verse in range(1, count + 1):
                    # get_iter() would skip empty verses and lose the reference: index directly
                    text = bible._text_for_index(testament, offset + book.chapter_offset(chapter - 1) + verse - 1)
                    if text and text.strip():
                        verses[(book.osis_name, chapter, verse)] = text
    return verses


# -- markup --------------------------------------------------------------------------------------
_STRONGS = re.compile(r"strong:([HG])0*(\d+)")
_CHAPTER_END = re.compile(r"<chapter eID=.*", re.S)  # what follows is end markup (and WEB's glossary)
_DROPPED = re.compile(r"<note\b.*?</note>|<speaker\b.*?</speaker>", re.S)
# a Strong's-tagged verb and an added enclitic pronoun are one word: "sáca"+"lo" -> "sácalo"
_ENCLITIC = re.compile(r"(\w+)</w><transChange[^>]*>(lo|la|los|las|le|les|me|te|se|nos|os)</transChange>")
# the words before an added pronoun in this text that are not verbs: there the pronoun stands alone
_NOT_VERBS = frozenset("como cuánto dios ellos gentes jehová josué no os que y".split())
_TOUCHING_ADDED = re.compile(r"</w>(?=<transChange)|</transChange>(?=<w\b)")
_BLOCK_TAG = re.compile(r"</?(?:l|lg|lb|div|chapter|milestone|p|title|list|item)\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?)\]»”’])")
_SPACE_AFTER = re.compile(r"([(\[«“¿¡])\s+")
# "... Amén. Fué escrita de Corinto á los Romanos ...": the words after an epistle's last "Amén."
_SUBSCRIPTION = re.compile(r"(>Amén</w>\.)(?=.*?<w\b).*?(?=<chapter eID=|$)", re.S)


def strongs(raw: str) -> FrozenSet[str]:
    """The verse's Strong's numbers ("H430", "G2424"), leading zeros dropped."""
    return frozenset(f"{letter}{number}" for letter, number in _STRONGS.findall(raw))


def _join_enclitic(match: re.Match) -> str:
    word, pronoun = match.groups()
    if word.lower() in _NOT_VERBS:
        return f"{word}</w> {pronoun}</transChange>"
    return f"{word}{pronoun}</transChange>"  # the closing tag keeps its boundary with the next word


def _recase_opening(text: str) -> str:
    """The Spanish prints a chapter's first word in capitals ("EN el principio", and after a
    psalm's title "... su hijo. ¡OH Jehová"): the first all-capital word gets normal case."""
    match = re.search(r"\b[^\W\d_a-zß-ÿ]{2,}\b", text)
    if match is None:
        return text
    return text[: match.start()] + match.group().capitalize() + text[match.end() :]


def strip_osis(raw: str, recase_opening: bool = False) -> str:
    """OSIS verse markup -> plain text: keep words, titles and added words; drop notes,
    cross-references, speaker labels and milestones; never glue two words together."""
    text = _CHAPTER_END.sub("", raw)
    text = _DROPPED.sub(" ", text)
    text = _ENCLITIC.sub(_join_enclitic, text)
    text = _TOUCHING_ADDED.sub(lambda m: m.group() + " ", text)
    text = _BLOCK_TAG.sub(" ", text)
    text = _ANY_TAG.sub("", text)  # inline tags (<w>, <transChange>, <q>, ...) keep their words
    text = html.unescape(text)
    text = " ".join(text.split())
    text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))
    return _recase_opening(text) if recase_opening else text


# -- alignment -----------------------------------------------------------------------------------
def overlap(a: FrozenSet[str], b: FrozenSet[str]) -> float:
    """|a & b| / max(|a|, |b|): both verses' lemmas must be covered, so a Spanish verse that
    merges two (where the Hebrew numbering has one verse more) does not pass for either."""
    return len(a & b) / max(len(a), len(b)) if a and b else 0.0


def align_to_reference(
    spanish: Dict[Ref, str], reference: Dict[Ref, str], min_overlap: float, window: int = 2
) -> Dict[Ref, Ref]:
    """Reference (KJV) verse -> the Spanish verse holding it.

    A Spanish verse stays at its own reference when their Strong's sets agree; otherwise it moves
    to the best-matching reference verse within ``window`` verses (in canonical order, across
    chapter ends), or is dropped. Two Spanish verses claiming one reference verse: the better wins.
    """
    order = list(reference)
    position = {ref: i for i, ref in enumerate(order)}
    lemmas = {ref: strongs(raw) for ref, raw in reference.items()}
    claims: Dict[Ref, Tuple[float, Ref]] = {}
    for ref, raw in spanish.items():
        mine = strongs(raw)
        if ref not in position or not mine:
            continue
        best_score, best_ref = overlap(mine, lemmas[ref]), ref
        if best_score < min_overlap:
            i = position[ref]
            for j in range(max(0, i - window), min(len(order), i + window + 1)):
                score = overlap(mine, lemmas[order[j]])
                if order[j][0] == ref[0] and score > best_score:
                    best_score, best_ref = score, order[j]
        if best_score >= min_overlap and best_score > claims.get(best_ref, (-1.0, ref))[0]:
            claims[best_ref] = (best_score, ref)
    return {target: source for target, (_, source) in claims.items()}


def split_of(book: str) -> str:
    return "val" if book in VALID_BOOKS else "test" if book in TEST_BOOKS else "train"


def word_count(text: str) -> int:
    return len(text.split())


def build(
    sword_path: Optional[str] = None, min_strongs_overlap: float = 0.5, max_length_ratio: float = 2.5
) -> List[AlignedVerse]:
    """The aligned corpus, in canonical order. Deterministic for given modules and arguments."""
    root = find_sword_path(sword_path)
    spanish, english, check = (read_module(name, root) for name in (SPANISH, ENGLISH, CHECK))
    for ref in [r for r in spanish if r[0] in PAULINE]:
        # the Spanish appends the subscription to an epistle's last verse; the WEB has none. Cut it
        # before aligning: its Strong's numbers would fail the alignment check.
        spanish[ref] = _SUBSCRIPTION.sub(r"\1 ", spanish[ref])
    aligned = align_to_reference(spanish, check, min_strongs_overlap)
    verses = []
    for ref in check:  # KJV order is canonical order
        if ref not in aligned or ref not in english:
            continue
        book, chapter, verse = ref
        es_ref = aligned[ref]
        es = strip_osis(spanish[es_ref], recase_opening=es_ref[2] == 1)
        en = strip_osis(english[ref])
        n_es, n_en = word_count(es), word_count(en)
        if not n_es or not n_en or max(n_es, n_en) > max_length_ratio * min(n_es, n_en) + 2:
            continue  # the +2 spares short verses ("Jesus wept." / "Y lloró Jesús.")
        verses.append(AlignedVerse(split_of(book), book, chapter, verse, es, en))
    return verses


def generate(sword_path: Optional[str] = None, min_strongs_overlap: float = 0.5, max_length_ratio: float = 2.5):
    """The corpus as the datamodule's ``{split: [(es, en), ...]}``."""
    pairs: Dict[str, List[Tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for v in build(sword_path, min_strongs_overlap, max_length_ratio):
        pairs[v.split].append((v.es, v.en))
    return pairs


COLUMNS = ("split", "book", "chapter", "verse", "es", "en")


def write_tsv(verses: Iterable[AlignedVerse], out: Path) -> int:
    count = 0
    with atomic_writer(out, newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(COLUMNS)
        for v in verses:
            writer.writerow((v.split, v.book, v.chapter, v.verse, v.es, v.en))
            count += 1
    return count


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m attnlab.data.bible")
    parser.add_argument("--out", required=True, type=args_.output_file(".tsv"), help="TSV file to write (split, book, chapter, verse, es, en)")
    parser.add_argument("--sword-path", default=None, help="SWORD directory (default: $SWORD_PATH, /usr/share/sword, ~/.sword)")
    parser.add_argument("--min-strongs-overlap", type=args_.number(0, 1, lo_open=True), default=0.5, help="in (0, 1]")
    parser.add_argument("--max-length-ratio", type=args_.number(1, 100), default=2.5, help="1 to 100")
    args = parser.parse_args(argv)
    try:
        verses = build(args.sword_path, args.min_strongs_overlap, args.max_length_ratio)
        count = write_tsv(verses, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    sizes = {s: sum(v.split == s for v in verses) for s in ("train", "val", "test")}
    print(f"wrote {count} aligned verses to {args.out} ({', '.join(f'{k} {n}' for k, n in sizes.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

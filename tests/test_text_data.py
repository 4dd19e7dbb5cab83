"""Text data for classification and pre-training: WordNet glosses, Bible sections, the user's own
files, Hugging Face datasets, and the datamodule that turns them into batches.

The WordNet and Bible tests need Debian's wordnet-base and SWORD modules; `.ci/run` installs them
and sets ATTNLAB_REQUIRE_WORDNET=1 and ATTNLAB_REQUIRE_SWORD=1, so in CI they fail, never skip.
"""

import gzip
import logging
import os
import re
from collections import Counter

import pytest

from attnlab.data import bible, bible_genre, text_files, wordnet
from attnlab.data.text import TextDataModule
from attnlab.data.user_files import UserDataError


@pytest.fixture(scope="module")
def wordnet_dir():
    try:
        return wordnet.find_wordnet()
    except FileNotFoundError as exc:
        if os.environ.get("ATTNLAB_REQUIRE_WORDNET"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def nouns(wordnet_dir):
    return wordnet.generate(seed=1234)


def test_wordnet_nouns_split_into_26_classes_without_sharing_a_synset(nouns, wordnet_dir):
    sizes = {split: len(rows) for split, rows in nouns.items()}
    assert sum(sizes.values()) == 82115 and sizes == {"val": 4106, "test": 8212, "train": 69797}
    assert len({label for _, label in nouns["train"]}) == 26
    assert all(label.startswith("noun.") for rows in nouns.values() for _, label in rows)
    # one gloss per synset, each synset in one split: the splits together are the file's synsets
    lines = [line for line in (wordnet_dir / "data.noun").read_text().splitlines() if not line.startswith("  ")]
    assert sum(sizes.values()) == len(lines)
    words = [len(gloss.split()) for rows in nouns.values() for gloss, _ in rows]
    assert 11 < sum(words) / len(words) < 14
    assert nouns == wordnet.generate(seed=1234)  # fixed by the seed
    assert nouns["val"] != wordnet.generate(seed=1)["val"]


def test_wordnet_class_names_are_the_packages_lexnames(wordnet_dir):
    page = gzip.open("/usr/share/man/man5/lexnames.5WN.gz", "rt").read()
    listed = re.findall(r"^(\d\d)\t(\S+)\s*\t", page, re.M)
    assert [name for _, name in listed] == list(wordnet.LEXNAMES) and [int(n) for n, _ in listed] == list(range(45))


def test_wordnet_all_parts_of_speech_give_45_classes(wordnet_dir):
    everything = wordnet.generate(seed=1, pos="all")
    assert len({label for rows in everything.values() for _, label in rows}) == 45


def test_missing_wordnet_names_the_apt_get_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y --no-install-recommends wordnet-base"):
        wordnet.generate(seed=1, wordnet_path=str(tmp_path))


@pytest.fixture(scope="module")
def sections():
    try:
        bible.find_sword_path()
    except FileNotFoundError as exc:
        if os.environ.get("ATTNLAB_REQUIRE_SWORD"):
            raise
        pytest.skip(str(exc))
    return bible_genre.generate(seed=1234)


def test_bible_sections_are_split_by_whole_chapter(monkeypatch):
    books = ["Gen", "Ps", "Isa", "Matt", "Acts", "Rom", "Rev", "Josh"]
    verses = [bible.AlignedVerse("train", b, c, v, f"es {b} {c}:{v}", f"{b} {c}:{v}") for b in books for c in range(1, 11) for v in range(1, 6)]
    monkeypatch.setattr(bible, "build", lambda sword_path=None: verses)
    sections = bible_genre.generate(seed=7)
    chapters = {}
    for split, rows in sections.items():
        for text, label in rows:
            book, place = text.split(" ")
            chapters.setdefault((book, place.split(":")[0]), set()).add(split)
            assert label == bible_genre.SECTION_OF[book]
    assert all(len(splits) == 1 for splits in chapters.values())  # no chapter straddles splits
    assert [len(sections[s]) for s in ("train", "val", "test")] == [320, 40, 40]  # 64 / 8 / 8 chapters


def test_bible_sections_on_the_real_verses(sections):
    counts = Counter(label for rows in sections.values() for _, label in rows)
    assert set(counts) == set(bible_genre.SECTIONS) and counts["acts"] > 800 and counts["history"] > 5000
    assert sum(counts.values()) > 30000
    spanish = bible_genre.generate(seed=1234, language="es")
    assert [label for _, label in spanish["test"]] == [label for _, label in sections["test"]]
    assert spanish["test"][0][0] != sections["test"][0][0]


# -- the user's own files ------------------------------------------------------------------------------
def write(path, text):
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_tsv_csv_and_plain_text_files(tmp_path):
    tsv = write(tmp_path / "train.tsv", "a good film\tpos\na bad film\tneg\n")
    csv_file = write(tmp_path / "val.csv", 'text,label\n"good, really",pos\n')
    plain = write(tmp_path / "test.txt", "just text\n\nmore text\n")
    texts = text_files.read(tsv, csv_file, tsv)
    assert texts["train"] == [("a good film", "pos"), ("a bad film", "neg")]
    assert texts["val"] == [("good, really", "pos")]
    unlabelled = text_files.read(plain, plain, plain, labelled=False, on_error="skip")
    assert unlabelled["train"] == [("just text", ""), ("more text", "")]


@pytest.mark.parametrize(
    "line,problem",
    [
        ("no label here\n", "expected 2 tab-separated columns (text, label), found 1"),
        ("\tpos\n", "empty text"),
        (b"caf\xe9\tpos\n", "not UTF-8"),
    ],
)
def test_malformed_lines_are_named_or_skipped_and_counted(tmp_path, caplog, line, problem):
    good = write(tmp_path / "good.tsv", "a\tx\nb\tx\n")
    bad = write(tmp_path / "bad.tsv", b"fine\tx\n" + (line.encode() if isinstance(line, str) else line))
    with pytest.raises(UserDataError, match=rf"{re.escape(str(bad))}:2: {re.escape(problem)}"):
        text_files.read(bad, good, good)
    with caplog.at_level(logging.WARNING):
        assert text_files.read(bad, good, good, on_error="skip")["train"] == [("fine", "x")]
    assert f"data.corpus.train: skipped 1 malformed line(s), e.g. {bad}:2" in caplog.text


def test_a_label_only_outside_train_is_named_by_file_and_line(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tx\nb\ty\n")
    test = write(tmp_path / "test.tsv", "c\tx\nd\tz\n")
    with pytest.raises(UserDataError, match=rf"{re.escape(str(test))}:2: label 'z' never occurs in the training file"):
        text_files.read(train, train, test)


def test_hf_text_loader_on_a_local_csv(tmp_path):
    pytest.importorskip("datasets")
    from attnlab.data import hf

    rows = "text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(40))
    write(tmp_path / "train.csv", rows)
    write(tmp_path / "test.csv", rows)
    texts = hf.load_text("csv", data_files={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}, val_size=8, seed=3)
    assert [len(texts[s]) for s in ("train", "val", "test")] == [32, 8, 40]
    assert {label for _, label in texts["train"]} == {"a", "b"}


# -- the datamodule --------------------------------------------------------------------------------------
def corpus(**sizes):
    def make():
        rows = [(f"word{i % 7} filler{i} text", "abc"[i % 3]) for i in range(60)]
        return {"train": rows[:40], "val": rows[40:50], "test": rows[50:]}

    return make


def test_text_datamodule_frames_truncates_and_batches(tmp_path):
    dm = TextDataModule("toy", corpus(), str(tmp_path), cache=False, max_len=4, batch_size=8)
    dm.setup()
    assert dm.labels == ["a", "b", "c"] and dm.vocab.mask_id == 4
    example = dm.splits["train"].examples[0]
    assert len(example.ids) == 4 and example.ids[0] == dm.vocab.bos_id and example.ids[-1] == dm.vocab.eos_id
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape == (8, 4) and batch["word_starts"].dtype.is_floating_point is False
    assert set(batch["labels"].tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match="data.max_len must be at least 3"):
        TextDataModule("toy", corpus(), str(tmp_path), max_len=2)


def test_few_label_training_keeps_the_same_examples_and_the_whole_class_list(tmp_path):
    def kept(**kwargs):
        dm = TextDataModule("toy", corpus(), str(tmp_path), cache=False, **kwargs)
        dm.setup()
        return dm, [e.text for e in dm.splits["train"].examples]

    dm, first = kept(train_size=5, shuffle_seed=1)
    assert len(first) == 5 and dm.labels == ["a", "b", "c"] and len(dm.splits["val"].examples) == 10
    assert kept(train_size=5, shuffle_seed=2)[1] == first  # the run's seed changes the order, not the examples
    dm, per_class = kept(labels_per_class=2)
    assert Counter(e.label for e in dm.splits["train"].examples) == {0: 2, 1: 2, 2: 2}
    with pytest.raises(ValueError, match="data.train_size=500 is larger than the training split"):
        kept(train_size=500)

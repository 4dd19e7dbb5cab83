"""The embedded corpora, the cache, tokenizers and vocabularies."""

import datetime as dt
import functools
import re

import pytest

from attnlab.data import dates, numbers
from attnlab.data.corpus_cache import cache_path, load_or_generate, read_pairs
from attnlab.data.datamodule import TranslationDataModule
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocab


@pytest.mark.parametrize(
    "n,expected",
    [
        (21000, "veintiún mil"),
        (101000000, "ciento un millones"),
        (31000, "treinta y un mil"),
        (21021021, "veintiún millones veintiún mil veintiuno"),
        (1000000, "un millón"),
        (1, "uno"),
        (21, "veintiuno"),
        (1001, "mil uno"),
    ],
)
def test_spanish_number_words_use_apocope_before_mil_and_millones(n, expected):
    assert numbers.spanish(n) == expected


def test_numbers_spread_over_lengths_and_splits_share_no_number():
    pairs = numbers.generate(seed=3, train_size=3000, val_size=200, test_size=300)
    sizes = {k: len(v) for k, v in pairs.items()}
    assert sizes == {"train": 3000, "val": 200, "test": 300}
    lengths = [len(src.split()) for split in pairs.values() for src, _ in split]
    assert min(lengths) == 1 and max(lengths) >= 20
    # every length band is well represented, not just the long numbers most values have
    assert sum(length <= 5 for length in lengths) > 0.1 * len(lengths)
    sources = {split: {src for src, _ in items} for split, items in pairs.items()}
    assert not (sources["train"] & sources["test"]) and not (sources["train"] & sources["val"]) and not (sources["val"] & sources["test"])
    assert numbers.generate(seed=3, train_size=3000, val_size=200, test_size=300) == pairs


def test_number_samples_are_uniform_over_digit_counts():
    import random

    sample = numbers.sample_numbers(1300, 13, random.Random(0))
    by_digits = {d: sum(len(str(n)) == d for n in sample) for d in range(1, 14)}
    assert by_digits[1] == 10 and by_digits[2] == 90
    assert all(95 <= by_digits[d] <= 130 for d in range(4, 14))


def test_dates_cover_the_locales_and_leave_out_numeric_forms():
    pairs = dates.generate(seed=5, train_size=2000, val_size=100, test_size=100)
    sources = [s for items in pairs.values() for s, _ in items]
    assert len(set(sources)) == len(sources) == 2200
    for src, tgt in pairs["train"]:
        assert re.search(r"[^\W\d_]", src), src  # some letters: never a numeric-only date
        assert dt.date.fromisoformat(tgt).isoformat() == tgt
    assert any("de julio" in s or "de jul." in s for s in sources)  # Spanish / Portuguese
    assert any(s.split()[0] in {"Montag,", "Dienstag,", "Mittwoch,", "Donnerstag,", "Freitag,", "Samstag,", "Sonntag,"} for s in sources)
    assert dates.render(dt.date(2024, 7, 3), "de_DE", "medium") is None  # "03.07.2024"


def test_tokenizers_round_trip():
    word = Tokenizer("word")
    text = "one million, two hundred and thirty-four"
    assert word.tokenize(text) == ["one", "million", ",", "two", "hundred", "and", "thirty-four"]
    assert word.detokenize(word.tokenize(text)) == text
    char = Tokenizer("char")
    assert char.detokenize(char.tokenize("3 de julio")) == "3 de julio"
    with pytest.raises(ValueError, match="must be one of word, char, bpe, hf"):
        Tokenizer("sentencepiece")
    with pytest.raises(ValueError, match="bpe and hf tokenizers need their model"):
        Tokenizer("bpe")


def test_vocab_is_deterministic_and_decodes_to_eos():
    seqs = [["b", "a", "a"], ["c", "a"]]
    vocab = Vocab.build(seqs)
    assert vocab.tokens[: len(SPECIALS)] == list(SPECIALS)
    assert vocab.tokens[4:] == ["a", "b", "c"]
    assert vocab.encode(["a", "zzz"]) == [4, UNK_ID]
    assert vocab.decode([BOS_ID, 4, 5, EOS_ID, 6, PAD_ID]) == ["a", "b"]
    with pytest.raises(ValueError, match="special tokens"):
        Vocab(["a", "b"])


def test_cache_is_reused_and_keyed_by_arguments(tmp_path):
    calls = []

    def gen(seed, size):
        calls.append(seed)
        return {"train": [(f"s{seed}", "t")] * size, "val": [("v", "w")], "test": [("x", "y")]}

    first = load_or_generate(tmp_path, "toy", gen, {"seed": 1, "size": 2})
    again = load_or_generate(tmp_path, "toy", gen, {"seed": 1, "size": 2})
    other = load_or_generate(tmp_path, "toy", gen, {"seed": 2, "size": 2})
    assert first == again and calls == [1, 2]
    assert other["train"][0][0] == "s2"
    assert cache_path(tmp_path, "toy", gen, {"seed": 1, "size": 2}) != cache_path(tmp_path, "toy", gen, {"seed": 2, "size": 2})


def test_malformed_cache_line_is_named(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("train\tuno\tone\nvalid\tdos\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 'split<TAB>source<TAB>target'"):
        read_pairs(bad)


def test_datamodule_batches_carry_bos_eos_and_texts(tmp_path):
    dm = TranslationDataModule(
        "numbers", functools.partial(numbers.generate, train_size=64, val_size=8, test_size=8), str(tmp_path), seed=1, batch_size=16, eval_batch_size=8
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["src"].shape[0] == 8 and len(batch["tgt_text"]) == 8
    assert (batch["tgt"][:, 0] == BOS_ID).all()
    for row, text in zip(batch["tgt"].tolist(), batch["tgt_text"]):
        assert dm.tgt_tokenizer.detokenize(dm.tgt_vocab.decode(row)) == text or UNK_ID in row
        assert EOS_ID in row
    assert dm.longest_sequence == max(max(len(e.src_ids), len(e.tgt_ids)) for s in dm.splits.values() for e in s.examples)


# -- subword tokenization ----------------------------------------------------------------------------
SENTENCES = [
    "¿Tienes aquí alguno más? Yernos, y tus hijos.",
    "In the beginning, God created the heavens and the earth.",
    "Yahweh’s word, which he didn’t keep — “Selah.”",
    "Y lloró Jesús.",
] * 5


def test_bpe_round_trips_text_exactly_and_rebuilds_from_its_spec(tmp_path):
    from attnlab.data.subword import cached_bpe

    model = cached_bpe(SENTENCES, vocab_size=120, min_frequency=1, cache_dir=str(tmp_path))
    bpe = Tokenizer("bpe", model)
    for text in SENTENCES[:4]:
        pieces = bpe.tokenize(text)
        assert len(pieces) > len(text.split())  # punctuation is its own piece, rare words split
        assert bpe.detokenize(pieces) == text
    rebuilt = Tokenizer.from_spec(bpe.spec)
    assert rebuilt.tokenize(SENTENCES[0]) == bpe.tokenize(SENTENCES[0])
    assert Tokenizer.from_spec("char").spec == "char"
    # cached by texts and settings: the same call reads the file, other settings train anew
    assert cached_bpe(SENTENCES, 120, 1, str(tmp_path)) == model
    cached_bpe(SENTENCES, 100, 1, str(tmp_path))
    assert len(list(tmp_path.glob("bpe-*.json"))) == 2


# -- length-bucketed batching ------------------------------------------------------------------------
def _lengths(n=600, seed=0):
    import random

    rng = random.Random(seed)
    return [rng.randint(1, 100) for _ in range(n)]


def test_token_buckets_cover_each_example_once_within_the_budget_with_little_padding():
    from attnlab.data.sampling import ShardedBatchSampler, TokenBucketBatchSampler, padding_fraction

    lengths = _lengths()
    sampler = TokenBucketBatchSampler(lengths, max_tokens=400, shuffle=True, seed=5, window=10)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    by_sentences = list(ShardedBatchSampler(len(lengths), 16, shuffle=True, seed=5))
    assert padding_fraction(batches, lengths) < 0.1 < 0.4 < padding_fraction(by_sentences, lengths)
    assert list(TokenBucketBatchSampler(lengths, 400, True, seed=5, window=10)) == batches  # reproducible
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order every epoch
    with pytest.raises(ValueError, match="data.max_tokens=50 is smaller than the longest example"):
        TokenBucketBatchSampler(lengths, max_tokens=50, shuffle=True)


def test_token_buckets_are_dealt_to_ranks_and_resume_mid_epoch(monkeypatch):
    from attnlab.data import sampling

    lengths = _lengths(301, seed=1)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(sampling, "rank_and_world", lambda rank=rank: (rank, 2))
        per_rank.append(list(sampling.TokenBucketBatchSampler(lengths, 300, shuffle=True, seed=2)))
    assert len(per_rank[0]) == len(per_rank[1])
    assert set(i for batches in per_rank for b in batches for i in b) == set(range(len(lengths)))
    monkeypatch.setattr(sampling, "rank_and_world", lambda: (0, 1))
    single = list(sampling.TokenBucketBatchSampler(lengths, 300, shuffle=True, seed=2))
    # whole batches are dealt in turn: together the ranks hold the single-process epoch's batches
    assert {tuple(b) for batches in per_rank for b in batches} == {tuple(b) for b in single}
    assert per_rank[0] == single[0::2] and per_rank[1] == (single + single[:1])[1::2][: len(per_rank[0])]

    first = sampling.TokenBucketBatchSampler(lengths, 300, shuffle=True, seed=2)
    first.set_epoch(3)
    full = list(first)
    first.consumed = 4  # the training loop finished 4 batches, then the run was killed
    resumed = sampling.TokenBucketBatchSampler(lengths, 300, shuffle=True, seed=2)
    resumed.load_state_dict(first.state_dict())
    resumed.set_epoch(3)
    assert list(resumed) == full[4:]


def test_numbers_for_the_extrapolation_study_keep_the_vocabulary_and_hold_out_longer_numbers():
    pairs = numbers.generate(seed=3, train_size=400, val_size=40, test_size=160, max_digits=12, train_max_digits=6, style="digits")
    lengths = {split: sorted({len(s.split()) for s, _ in rows}) for split, rows in pairs.items()}
    assert lengths["train"][-1] == 6 and lengths["val"][-1] <= 6 and lengths["test"] == list(range(7, 13))
    assert sum(len(s.split()) == 9 for s, _ in pairs["test"]) == 160 // 6 + (1 if 2 < 160 % 6 else 0)  # even over 7..12 digits
    words = {split: {w for s, t in rows for w in (s + " " + t).split()} for split, rows in pairs.items()}
    assert words["test"] <= words["train"]  # the same ten words a side at every length
    src, tgt = pairs["test"][0]
    assert len(src.split()) == len(tgt.split())
    with pytest.raises(ValueError, match=r"data.corpus.train_max_digits must be within 1..11"):
        numbers.generate(seed=3, max_digits=12, train_max_digits=12)
    with pytest.raises(ValueError, match="data.corpus.style must be one of words, digits"):
        numbers.generate(seed=3, style="roman")

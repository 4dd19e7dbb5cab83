"""data=bible: OSIS markup stripping, Strong's alignment, and the corpus built from the real modules.

The corpus tests need Debian's sword-text-sparv, sword-text-web and sword-text-kjv; `.ci/run`
installs them and sets ATTNLAB_REQUIRE_SWORD=1, so in CI a missing module fails instead of skipping.
"""

import csv
import os
import re
import statistics

import pytest

from attnlab.data import bible
from attnlab.data.bible import align_to_reference, strip_osis


# -- markup (no modules needed) --------------------------------------------------------------------
def test_notes_are_removed_without_gluing_words():
    raw = '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew word.</note><w lemma="strong:H1254">created</w>'
    assert strip_osis(raw) == "God created"


def test_added_words_touching_strongs_words_get_a_space_but_in_word_additions_do_not():
    raw = (
        '<w lemma="strong:H0087">Abram</w><transChange type="added">de allí</transChange><w lemma="strong:H5265">partió</w>, '
        'preguntándo<transChange type="added">le</transChange>, '
        '<w lemma="strong:H3318">sáca</w><transChange type="added">lo</transChange><w lemma="strong:H4725">de este lugar</w>: '
        '<w lemma="strong:H3068">Jehová</w><transChange type="added">los</transChange>'
    )
    assert strip_osis(raw) == "Abram de allí partió, preguntándole, sácalo de este lugar: Jehová los"


def test_psalm_titles_stay_speakers_and_milestones_go_and_the_glossary_is_cut():
    raw = (
        '<div type="x-milestone" subType="x-preverse" sID="pv1"/><title canonical="true" type="psalm">A Psalm by David.</title> '
        '<lg sID="a"/><l level="1" sID="b"/><speaker>Beloved</speaker> Yahweh, how<l eID="b" level="1"/> '
        '<l level="2" sID="c"/>“many!”<l eID="c"/> <chapter eID="Rev.22"/><div type="glossary"/> <title>World English Bible Glossary</title> Abba: Father'
    )
    assert strip_osis(raw) == "A Psalm by David. Yahweh, how “many!”"


def test_a_chapters_capitalised_opening_word_is_recased():
    assert strip_osis("<w>EN el principio</w> crió Dios", recase_opening=True) == "En el principio crió Dios"
    assert strip_osis("Salmo de David. ¡<w>OH</w> Jehová", recase_opening=True) == "Salmo de David. ¡Oh Jehová"
    assert strip_osis("<w>EN el principio</w>") == "EN el principio"  # only a chapter's first verse


def _w(*numbers):
    return " ".join(f'<w lemma="strong:H{n:04d}">x</w>' for n in numbers)


def test_alignment_moves_a_shifted_verse_across_the_chapter_end_and_drops_a_merged_one():
    reference = {
        ("Num", 12, 15): _w(1, 2, 3, 4),
        ("Num", 12, 16): _w(5, 6, 7, 8),
        ("Num", 13, 1): _w(9, 10, 11, 12),
        ("Num", 13, 2): _w(13, 14, 15, 16),
        ("Num", 13, 3): _w(17, 18, 19, 20),
    }
    spanish = {  # Hebrew numbering: 12:16 is printed as 13:1, so every verse after moves one up
        ("Num", 12, 15): _w(1, 2, 3, 4),
        ("Num", 13, 1): _w(5, 6, 7, 8),
        ("Num", 13, 2): _w(9, 10, 11, 12),
        ("Num", 13, 3): _w(13, 14, 15, 16, 17, 18, 19, 20, 21, 22),  # the last two merged into one slot
    }
    aligned = align_to_reference(spanish, reference, min_overlap=0.5)
    assert aligned == {
        ("Num", 12, 15): ("Num", 12, 15),
        ("Num", 12, 16): ("Num", 13, 1),
        ("Num", 13, 1): ("Num", 13, 2),
    }


# -- the real corpus ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sword_path():
    try:
        return bible.find_sword_path()
    except FileNotFoundError as exc:
        if os.environ.get("ATTNLAB_REQUIRE_SWORD"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def corpus(sword_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bible") / "bible.tsv"
    assert bible.main(["--out", str(out)]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return out, rows, {(r["book"], int(r["chapter"]), int(r["verse"])): r for r in rows}


def test_corpus_size_splits_and_lengths(corpus):
    _, rows, _ = corpus
    assert 30_700 <= len(rows) <= 30_800
    sizes = {split: sum(r["split"] == split for r in rows) for split in ("train", "val", "test")}
    assert 27_900 <= sizes["train"] <= 28_300 and 1_200 <= sizes["val"] <= 1_320 and 1_340 <= sizes["test"] <= 1_440
    for r in rows:  # whole books per split
        assert r["split"] == bible.split_of(r["book"])
    es = [len(r["es"].split()) for r in rows]
    en = [len(r["en"].split()) for r in rows]
    assert 22.3 <= statistics.mean(es) <= 22.9 and max(es) <= 80
    assert 23.8 <= statistics.mean(en) <= 24.4


def test_corpus_is_deterministic(corpus, tmp_path):
    out, _, _ = corpus
    again = tmp_path / "again.tsv"
    assert bible.main(["--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_no_markup_or_glued_words_are_left(corpus):
    _, rows, _ = corpus
    for r in rows:
        for side in ("es", "en"):
            text = r[side]
            assert not re.search(r"[<>]|&\w+;|strong:|\s{2}", text), (r["book"], r["chapter"], r["verse"], text)
            assert not re.search(r"[a-záéíóúñ][A-ZÁÉÍÓÚÑ]", text), (r["book"], r["chapter"], r["verse"], text)


def test_spot_checked_alignments(corpus):
    _, _, by_ref = corpus
    gen = by_ref[("Gen", 1, 1)]
    assert gen["es"] == "En el principio crió Dios los cielos y la tierra."
    assert gen["en"] == "In the beginning, God created the heavens and the earth."
    assert by_ref[("John", 11, 35)]["es"] == "Y lloró Jesús." and by_ref[("John", 11, 35)]["en"] == "Jesus wept."
    psalm = by_ref[("Ps", 3, 1)]
    assert psalm["es"].startswith("Salmo de David, cuando huía") and "¡Oh Jehová" in psalm["es"]
    assert psalm["en"].startswith("A Psalm by David, when he fled from Absalom his son.")
    # inside renumbered chapters: the Spanish prints KJV Num 12:16 as 13:1 and KJV Jonah 1:17 as 2:1
    assert "Haseroth" in by_ref[("Num", 12, 16)]["es"] and "Hazeroth" in by_ref[("Num", 12, 16)]["en"]
    assert by_ref[("Num", 13, 1)]["es"] == "Y Jehová habló á Moisés, diciendo:"
    assert "pez" in by_ref[("Jonah", 1, 17)]["es"] and "fish" in by_ref[("Jonah", 1, 17)]["en"]
    assert by_ref[("Jonah", 2, 1)]["es"].startswith("Y oró Jonás") and by_ref[("Jonah", 2, 1)]["en"].startswith("Then Jonah prayed")
    assert "David" in by_ref[("1Sam", 24, 1)]["es"]
    # enclitics joined, the WEB glossary cut, Pauline subscriptions dropped, speakers removed
    assert "sácalo de este lugar" in by_ref[("Gen", 19, 12)]["es"]
    assert by_ref[("Rev", 22, 21)]["en"] == "The grace of the Lord Jesus Christ be with all the saints. Amen."
    assert by_ref[("Heb", 13, 25)]["es"] == "La gracia sea con todos vosotros. Amén."
    assert not by_ref[("Song", 1, 2)]["en"].startswith("Beloved")


def test_missing_modules_name_the_apt_get_line(tmp_path, capsys):
    assert bible.main(["--out", str(tmp_path / "x.tsv"), "--sword-path", str(tmp_path)]) == 1
    assert "apt-get install -y sword-text-sparv sword-text-web sword-text-kjv" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()


@pytest.mark.slow  # 15 s of BPE on the real verses; test_data's token-bucket tests are its fast siblings
def test_bible_datamodule_bpe_and_bucketed_batches_pad_under_15_percent(sword_path, tmp_path):
    from hydra.utils import instantiate

    from attnlab.data.sampling import padding_fraction
    from tests.helpers import compose_config

    cfg = compose_config(tmp_path, ["data=bible", "data.bpe.vocab_size=4000"], data_dir=tmp_path / "data", tiny=False)
    dm = instantiate(cfg.data, shuffle_seed=0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.src_vocab is dm.tgt_vocab and len(dm.src_vocab) <= 4000  # joint BPE, joint vocabulary
    examples = dm.splits["train"].examples
    batches = list(dm.train_dataloader().batch_sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    src_lengths = [len(e.src_ids) for e in examples]
    tgt_lengths = [len(e.tgt_ids) for e in examples]
    assert all(len(b) * max(max(src_lengths[i], tgt_lengths[i]) for i in b) <= cfg.data.max_tokens for b in batches)
    assert padding_fraction(batches, src_lengths, tgt_lengths) < 0.15
    text = examples[0].tgt_text
    assert dm.tgt_tokenizer.detokenize(dm.tgt_vocab.decode(examples[0].tgt_ids)) == text

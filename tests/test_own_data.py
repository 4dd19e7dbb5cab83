"""The user's own data: parallel_files (TSV or line-aligned pairs), the hf loader on local files,
offline fail-fast, and a BPE model trained on it that travels inside the checkpoint."""

import functools
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from attnlab.data import hf, parallel_files
from attnlab.data.user_files import UserDataError

PAIRS = [
    ("el perro come", "the dog eats"),
    ("el gato duerme", "the cat sleeps"),
    ("la casa es grande", "the house is big"),
    ("un libro rojo", "a red book"),
]


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def test_tsv_and_line_aligned_files(tmp_path):
    tsv = write_tsv(tmp_path / "train.tsv", PAIRS)
    (tmp_path / "val.es").write_text("el perro\nla casa\n", encoding="utf-8")
    (tmp_path / "val.en").write_text("the dog\nthe house\n", encoding="utf-8")
    pairs = parallel_files.read(
        train=str(tsv), val={"source": str(tmp_path / "val.es"), "target": str(tmp_path / "val.en")}, test=str(tsv)
    )
    assert pairs["train"] == PAIRS and pairs["test"] == PAIRS
    assert pairs["val"] == [("el perro", "the dog"), ("la casa", "the house")]


@pytest.mark.parametrize(
    "line,problem",
    [
        (b"solo una columna\n", "expected 2 tab-separated columns (source, target), found 1"),
        (b"a\tb\tc\n", "found 3"),
        (b"\tthe target\n", "empty source"),
        (b"la fuente\t \n", "empty target"),
        (b"caf\xe9\tcoffee\n", "not UTF-8"),
    ],
)
def test_a_malformed_line_names_file_and_line_or_is_skipped_and_counted(tmp_path, caplog, line, problem):
    bad = tmp_path / "train.tsv"
    bad.write_bytes("el perro\tthe dog\n".encode() + line + "la casa\tthe house\n".encode())
    good = write_tsv(tmp_path / "good.tsv", PAIRS)
    with pytest.raises(UserDataError, match=rf"{re.escape(str(bad))}:2: .*{re.escape(problem)}.*on_error=skip"):
        parallel_files.read(train=str(bad), val=str(good), test=str(good))
    with caplog.at_level(logging.WARNING):
        pairs = parallel_files.read(train=str(bad), val=str(good), test=str(good), on_error="skip")
    assert pairs["train"] == [("el perro", "the dog"), ("la casa", "the house")]
    assert f"data.corpus.train: skipped 1 malformed line(s), e.g. {bad}:2" in caplog.text


def test_misaligned_or_missing_files_are_errors_even_when_skipping(tmp_path):
    (tmp_path / "a.es").write_text("uno\ndos\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\n", encoding="utf-8")
    good = write_tsv(tmp_path / "good.tsv", PAIRS)
    aligned = {"source": str(tmp_path / "a.es"), "target": str(tmp_path / "a.en")}
    with pytest.raises(UserDataError, match="has 2 lines but .*a.en has 1"):
        parallel_files.read(train=aligned, val=str(good), test=str(good), on_error="skip")
    with pytest.raises(FileNotFoundError, match=r"data.corpus.val: no such file: .*missing.tsv"):
        parallel_files.read(train=str(good), val=str(tmp_path / "missing.tsv"), test=str(good))
    with pytest.raises(ValueError, match="on_error must be one of raise, skip"):
        parallel_files.read(train=str(good), val=str(good), test=str(good), on_error="ignore")


def test_hf_loader_on_local_csv_carves_missing_splits(tmp_path):
    pytest.importorskip("datasets")
    rows = [(f"frase {i}", f"sentence {i}") for i in range(40)]
    csv_file = tmp_path / "all.csv"
    csv_file.write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in rows), encoding="utf-8")
    pairs = hf.load("csv", data_files={"train": str(csv_file)}, source_field="source", target_field="target", val_size=5, test_size=5, seed=3)
    assert (len(pairs["train"]), len(pairs["val"]), len(pairs["test"])) == (30, 5, 5)
    assert sorted(pairs["train"] + pairs["val"] + pairs["test"]) == sorted(rows)
    again = hf.load("csv", data_files={"train": str(csv_file)}, source_field="source", target_field="target", val_size=5, test_size=5, seed=3)
    assert again == pairs  # the carving is reproducible
    with pytest.raises(KeyError, match="no field 'es'"):
        hf.load("csv", data_files={"train": str(csv_file)}, val_size=5, test_size=5)


def test_hf_translation_layout_from_local_json(tmp_path):
    pytest.importorskip("datasets")
    import json

    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"id": i, "translation": {"es": f"hola {split} {i}", "en": f"hello {split} {i}"}}) + "\n")
    files = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "validation", "test")}
    pairs = hf.load("json", data_files=files)
    assert pairs["val"][0] == ("hola validation 0", "hello validation 0") and len(pairs["train"]) == 6


def test_hub_dataset_without_network_fails_at_once(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "hub_reachable", lambda timeout=3.0: False)
    started = time.time()
    with pytest.raises(ConnectionError, match="cannot reach the Hugging Face Hub to fetch 'opus_books'.*HF_HUB_OFFLINE=1"):
        hf.load("opus_books", "en-es")
    assert time.time() - started < 2


def test_hub_dataset_with_hf_hub_offline_and_no_cached_copy_fails_at_once(tmp_path):
    pytest.importorskip("datasets")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = "from attnlab.data import hf; hf.load('opus_books', 'en-es')"
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "not in the local HF cache and the Hub is offline" in proc.stderr
    assert time.time() - started < 20  # not the half-minute of retries


def test_own_files_train_with_bpe_and_the_checkpoint_carries_the_tokenizer(tmp_path):
    """parallel_files + BPE through the real pipeline; the checkpoint alone then translates."""
    from attnlab.run.pipeline import train
    from attnlab.tasks import load_task
    from tests.helpers import TINY_ARCH, compose_config

    words = ["perro", "gato", "casa", "libro", "rojo", "grande", "come", "duerme"]
    english = dict(zip(words, ["dog", "cat", "house", "book", "red", "big", "eats", "sleeps"]))
    pairs = [(f"{a} {b}", f"{english[a]} {english[b]}") for a in words for b in words]
    tsv = write_tsv(tmp_path / "all.tsv", pairs)
    cfg = compose_config(
        tmp_path,
        [
            "data=parallel_files",
            f"data.corpus.train={tsv}",
            f"data.corpus.val={tsv}",
            f"data.corpus.test={tsv}",
            "data.bpe.vocab_size=120",
            "data.max_tokens=256",
            "logger=none",
            "trainer.max_epochs=1",
            "++trainer.enable_progress_bar=false",
            "++trainer.enable_model_summary=false",
            "~callbacks.progress_bar",
            *TINY_ARCH["transformer"],
        ],
        data_dir=tmp_path / "data",
        tiny=False,
    )
    result = train(cfg)
    assert result.status == "ok" and result.extras["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    (cached,) = (tmp_path / "data").glob("bpe-*.json")  # the trained model is cached ...
    translator = load_task(result.checkpoint).translator  # ... and the checkpoint carries it
    assert translator.src_tokenizer.kind == "bpe" and translator.src_tokenizer.spec["model"] == cached.read_text(encoding="utf-8")
    assert translator.src_tokenizer.tokenize("perro gato") == ["▁perro", "▁gato"]
    (out,) = translator.translate(["perro gato"])
    assert "▁" not in out  # detokenized before it is scored or shown
    hypotheses = (tmp_path / "out" / "test_hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert len(hypotheses) == len(pairs) and not any("▁" in h for h in hypotheses)


def test_separate_bpe_models_and_vocabularies_per_language(tmp_path):
    from attnlab.data.datamodule import TranslationDataModule

    tsv = write_tsv(tmp_path / "all.tsv", PAIRS * 3)
    corpus = functools.partial(parallel_files.read, train=str(tsv), val=str(tsv), test=str(tsv))
    dm = TranslationDataModule(
        "own", corpus, cache_dir=str(tmp_path), cache=False, src_tokenizer="bpe", tgt_tokenizer="bpe",
        bpe={"vocab_size": 60, "joint": False, "min_frequency": 1},
    )
    dm.setup("fit")
    assert dm.src_tokenizer.spec["model"] != dm.tgt_tokenizer.spec["model"]
    assert dm.src_vocab is not dm.tgt_vocab
    assert "▁the" in dm.tgt_vocab.tokens and "▁the" not in dm.src_vocab.tokens  # English pieces only on the English side
    assert len(list(tmp_path.glob("bpe-*.json"))) == 2
    with pytest.raises(ValueError, match=r"data.bpe has unknown keys \['size'\]"):
        TranslationDataModule("own", corpus, cache_dir=str(tmp_path), bpe={"size": 10})

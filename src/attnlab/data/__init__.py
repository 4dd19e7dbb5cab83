"""Datasets, tokenizers and datamodules. Data code never imports models or tasks."""

from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab

__all__ = ["Tokenizer", "TranslationDataModule", "Vocab"]


def __getattr__(name: str):
    # lazy, so `python -m attnlab.data.bible` does not pay for importing Lightning
    if name == "TranslationDataModule":
        from attnlab.data.datamodule import TranslationDataModule

        return TranslationDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

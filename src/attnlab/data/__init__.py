"""Datasets, tokenizers and the datamodule. Data code never imports models or tasks."""

from attnlab.data.datamodule import TranslationDataModule
from attnlab.data.vocab import Tokenizer, Vocab

__all__ = ["Tokenizer", "TranslationDataModule", "Vocab"]

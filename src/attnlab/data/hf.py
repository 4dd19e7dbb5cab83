"""``hf`` and ``hf_text``: datasets through Hugging Face ``datasets`` (optional: ``pip install
'attnlab[hf]'``), from the Hub (``opus_books`` / ``en-es`` for translation, ``ag_news`` for
classification) or from local csv/json files with the same loader.

Rows are either ``{"translation": {"es": ..., "en": ...}}`` (the Hub's translation layout) or
flat columns named by ``source_field`` / ``target_field``. Splits the dataset lacks (opus_books
has only ``train``) are carved out of its train split with ``seed``.

Without network the Hub loader would retry for half a minute; here an unreachable Hub fails at
once. With ``HF_HUB_OFFLINE=1`` a dataset already in the local HF cache loads offline.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

from attnlab.data.corpus_cache import SPLITS, Pairs

LOCAL_BUILDERS = ("csv", "json", "parquet", "text", "arrow")
DEFAULT_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def _import_datasets():
    try:
        import datasets
    except ImportError as exc:
        raise ImportError("data=hf needs the Hugging Face datasets library: pip install 'attnlab[hf]'") from exc
    return datasets


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the Hub within ``timeout`` s (skipped, i.e. True, behind a proxy)."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _load(path: str, name: Optional[str], data_files: Any):
    datasets = _import_datasets()
    from_hub = path not in LOCAL_BUILDERS and not os.path.exists(path)
    if from_hub and not _offline_env() and not hub_reachable():
        raise ConnectionError(
            f"data=hf: cannot reach the Hugging Face Hub to fetch {path!r}. Connect once to download it, "
            f"set HF_HUB_OFFLINE=1 to use a copy already in the HF cache, or use local files "
            f"(data.corpus.path=csv|json with data.corpus.data_files=...) or data=parallel_files."
        )
    try:
        return datasets.load_dataset(path, name, data_files=data_files)
    except ConnectionError as exc:
        raise ConnectionError(f"data=hf: {path!r} is not in the local HF cache and the Hub is offline ({exc})") from exc


def _pair(row: Mapping[str, Any], source: str, target: str, where: str) -> Tuple[str, str]:
    record = row["translation"] if "translation" in row else row
    try:
        src, tgt = record[source], record[target]
    except KeyError as exc:
        raise KeyError(f"{where}: no field {exc.args[0]!r}; fields are {sorted(record)} (set data.corpus.source_field/target_field)") from None
    if not isinstance(src, str) or not isinstance(tgt, str) or not src.strip() or not tgt.strip():
        raise ValueError(f"{where}: empty or non-text source/target: {src!r} -> {tgt!r}")
    return " ".join(src.split()), " ".join(tgt.split())


def _splits(path: str, name: Optional[str], data_files: Any, split_names: Optional[Mapping[str, str]], val_size: int, test_size: int, seed: int) -> Dict[str, Any]:
    """train/val/test of a dataset; a split it lacks is carved out of its train split with ``seed``."""
    names = {**DEFAULT_SPLIT_NAMES, **(split_names or {})}
    dataset = _load(path, name, data_files)
    if names["train"] not in dataset:
        raise KeyError(f"data=hf: {path!r} has no split {names['train']!r}; it has {sorted(dataset)}")
    parts: Dict[str, Any] = {"train": dataset[names["train"]]}
    for split, size in (("val", val_size), ("test", test_size)):
        if names[split] in dataset:
            parts[split] = dataset[names[split]]
        else:  # carve the missing split out of train, reproducibly
            carved = parts["train"].train_test_split(test_size=size, seed=seed + len(parts), shuffle=True)
            parts["train"], parts[split] = carved["train"], carved["test"]
    return parts


def load(
    path: str,
    name: Optional[str] = None,
    data_files: Any = None,
    source_field: str = "es",
    target_field: str = "en",
    split_names: Optional[Mapping[str, str]] = None,
    val_size: int = 1000,
    test_size: int = 1000,
    seed: int = 1234,
) -> Pairs:
    """Sentence pairs for translation."""
    parts = _splits(path, name, data_files, split_names, val_size, test_size, seed)
    return {split: [_pair(row, source_field, target_field, f"{path}[{split}] row {i}") for i, row in enumerate(parts[split])] for split in SPLITS}


def load_text(
    path: str = "ag_news",
    name: Optional[str] = None,
    data_files: Any = None,
    text_field: str = "text",
    label_field: str = "label",
    split_names: Optional[Mapping[str, str]] = None,
    val_size: int = 1000,
    test_size: int = 1000,
    seed: int = 1234,
) -> Pairs:
    """Labelled texts for classification (default: AG News, the lesson's dataset, 4 classes).
    Integer labels of a ``ClassLabel`` column become its names."""
    parts = _splits(path, name, data_files, split_names, val_size, test_size, seed)
    texts: Dict[str, List[Tuple[str, str]]] = {}
    for split in SPLITS:
        feature = parts[split].features.get(label_field) if hasattr(parts[split], "features") else None
        label_names = getattr(feature, "names", None)
        rows = []
        for i, row in enumerate(parts[split]):
            where = f"{path}[{split}] row {i}"
            if text_field not in row or label_field not in row:
                raise KeyError(f"{where}: no field {text_field!r} or {label_field!r}; fields are {sorted(row)} (set data.corpus.text_field/label_field)")
            text, label = row[text_field], row[label_field]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: empty or non-text {text_field!r}: {text!r}")
            rows.append((" ".join(text.split()), label_names[label] if label_names else str(label)))
        texts[split] = rows
    return texts

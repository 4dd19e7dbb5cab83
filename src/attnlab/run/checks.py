"""Checks of a composed config that must fail before any training, naming the key to change."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig, OmegaConf

from attnlab.errors import ConfigError


def check_required_values(cfg: DictConfig) -> None:
    """Keys left at ``???`` (e.g. data=parallel_files's file paths) fail here, by name."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required value(s): {', '.join(missing)}; set them on the command line, e.g. {missing[0]}=...")


def check_model_config(cfg: DictConfig, longest_sequence: Optional[int] = None, data_name: str = "") -> None:
    heads = cfg.attention.get("num_heads")
    width = cfg.arch.get("d_model")
    if heads is not None and width is not None and width % heads != 0:
        raise ConfigError(
            f"arch.d_model={width} is not divisible by attention.num_heads={heads}: "
            f"each head gets d_model / num_heads dimensions"
        )
    max_len = cfg.pos_enc.get("max_len")
    if max_len is not None and longest_sequence is not None and max_len < longest_sequence:
        raise ConfigError(
            f"pos_enc.max_len={max_len} is shorter than the longest sequence of data={data_name} "
            f"({longest_sequence} tokens); raise pos_enc.max_len to at least {longest_sequence}"
        )

"""A benchmark's task and data, composed from the real config tree like `train.py` does."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

import attnlab.resolvers  # noqa: F401
from attnlab.tasks import TranslationTask

ROOT = Path(__file__).resolve().parents[1]


def task_and_data(overrides: Sequence[str]):
    """(TranslationTask, set-up datamodule) for ``python train.py <overrides>``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=unused"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    task = TranslationTask(
        arch=cfg.arch, attention=cfg.attention, pos_enc=cfg.pos_enc,
        src_vocab=dm.src_vocab.tokens, tgt_vocab=dm.tgt_vocab.tokens,
        src_tokenizer=dm.src_tokenizer.spec, tgt_tokenizer=dm.tgt_tokenizer.spec,
        **{k: v for k, v in OmegaConf.to_container(cfg.task).items() if k != "_target_"},
    )
    return task, dm

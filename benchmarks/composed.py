"""A benchmark's task and data, composed from the real config tree and built the way `train.py`
builds them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

import attnlab.run.resolvers  # noqa: F401
from attnlab.run.pipeline import data_and_task

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ATTNLAB_ROOT", str(ROOT))  # corpus caches under the repository's logs/, as train.py


def composed(overrides: Sequence[str]):
    """The config of ``python train.py <overrides>``, as its job sees it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)  # ${hydra:runtime.choices...} as in a real job
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = "unused"
    return cfg


def task_and_data(overrides: Sequence[str]):
    """(task, set-up datamodule) for ``python train.py <overrides>``."""
    datamodule, task = data_and_task(composed(overrides))
    return task, datamodule

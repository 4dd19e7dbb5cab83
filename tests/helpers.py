"""Shared helpers: compose the real config tree with tiny budgets, run jobs in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import attnlab.resolvers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# small enough to train in seconds, large enough to exercise every code path
TINY = [
    "logger=none",
    "data.corpus.train_size=96",
    "data.corpus.val_size=24",
    "data.corpus.test_size=24",
    "data.batch_size=32",
    "data.eval_batch_size=24",
    "trainer.max_epochs=1",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "task.max_len_b=4",
    "task.max_len_a=1.0",
]
TINY_ARCH = {
    "transformer": ["arch.d_model=32", "arch.d_ff=64", "arch.num_encoder_layers=1", "arch.num_decoder_layers=1"],
    "rnn": ["arch.d_model=32", "arch.emb_dim=16"],
}


def compose_config(tmp_path: Path, overrides: Iterable[str] = (), data_dir: Path | None = None, tiny: bool = True) -> DictConfig:
    overrides = list(overrides)
    arch = next((o.split("=", 1)[1] for o in overrides if o.startswith("arch=")), "transformer")
    base = TINY + TINY_ARCH.get(arch, []) if tiny else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=base + overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # a real job's config has none; ${hydra:...} reads HydraConfig instead
        cfg.paths.output_dir = str(tmp_path / "out")
        cfg.paths.log_dir = str(tmp_path / "logs")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    return cfg


def run_train_cli(args: Iterable[str], cwd: Path, env_extra: dict | None = None, unset: Iterable[str] = (), timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true", **(env_extra or {})}
    for key in unset:
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


class KillAtStep:
    """A Lightning callback for tests: SIGKILL this process after training step ``step``
    (before that step's checkpoint is written), as a crash or a pre-empted job would."""

    def __new__(cls, step: int):
        import lightning as L

        class _Kill(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_step >= step:
                    os.kill(os.getpid(), 9)

        return _Kill()

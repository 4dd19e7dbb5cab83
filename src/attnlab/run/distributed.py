"""Making Hydra and Lightning's DDP agree.

Lightning's ``strategy=ddp`` starts the other ranks by re-running ``sys.argv``. Inside a Hydra
multirun that command line is the whole sweep (``-m a=1,2``), so every child would start the sweep
again. Before such a job trains, :func:`prepare_ddp_job` rewrites ``sys.argv`` to this job's own
overrides and points ``hydra.run.dir`` at the job's directory, so each child runs exactly this job,
in its directory, as a plain run.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any, Callable

import torch

from omegaconf import DictConfig, open_dict, read_write

from attnlab.errors import ConfigError


def uses_subprocess_ddp(cfg: DictConfig) -> bool:
    """True when Lightning will launch the other ranks by re-running the script."""
    strategy = cfg.trainer.get("strategy")
    name = strategy.get("_target_", "") if isinstance(strategy, DictConfig) else str(strategy or "")
    if "spawn" in name.lower() or "ddp" not in name.lower():
        return False
    if "TORCHELASTIC_RUN_ID" in os.environ or "SLURM_NTASKS" in os.environ:
        return False  # torchrun / srun started every rank already
    devices = cfg.trainer.get("devices", 1)
    if isinstance(devices, int):
        return devices == -1 or devices > 1
    return str(devices) not in ("1", "[0]")  # "auto", "-1", "0,1", a list of several


def prepare_ddp_job(cfg: DictConfig, hydra_cfg: Any) -> Callable[[], None]:
    """Returns a function that undoes, after the job, what launching its ranks changed in this
    process (Lightning leaves LOCAL_RANK, MASTER_PORT, ... and a reduced thread count behind, and
    the next job would then neither start its ranks nor use the cores)."""
    if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN" or not uses_subprocess_ddp(cfg):
        return lambda: None
    if "joblib" in str(hydra_cfg.launcher.get("_target_", "")).lower():
        raise ConfigError(
            "hydra/launcher=joblib cannot run DDP jobs (its workers cannot re-launch themselves as "
            "ranks): use the basic launcher, hydra/launcher=slurm, or a single-process trainer"
        )
    job_dir = hydra_cfg.runtime.output_dir
    saved_argv, saved_env, saved_threads = list(sys.argv), dict(os.environ), torch.get_num_threads()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = job_dir  # Lightning passes hydra.run.dir=<this> to the children

    def restore() -> None:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)

    return restore


def set_torchrun_run_id() -> None:
    """All torchrun ranks share one run directory: name it after the launching agent."""
    if "TORCHELASTIC_RUN_ID" in os.environ and "ATTNLAB_RUN_ID" not in os.environ:
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M")
        os.environ["ATTNLAB_RUN_ID"] = f"{stamp}_torchrun-{os.getppid()}"

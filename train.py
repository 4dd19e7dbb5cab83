"""Train one configuration (or, with -m, a sweep of them).

    python train.py                                   # the default experiment
    python train.py arch=rnn attention=additive       # compose another one
    python train.py -m arch=rnn,transformer seed=1,2  # a multirun sweep
"""

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import attnlab.run.resolvers  # noqa: F401  (the config tree's own resolvers)

# outputs go under this repository's logs/, wherever the command is run from
os.environ.setdefault("ATTNLAB_ROOT", str(Path(__file__).resolve().parent))
if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun: every rank must pick the same run directory
    from attnlab.run.distributed import set_torchrun_run_id

    set_torchrun_run_id()


def refuse_missing_resume_dir(argv) -> None:
    """Hydra creates the run directory before the job starts: a mistyped resume=<dir> must stop
    here, or it would create the very directory it says does not exist."""
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "resume" and value not in ("", "null") and not Path(value).expanduser().is_dir():
            sys.exit(f"attnlab: invalid configuration: resume={value}: no such run directory")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from attnlab.errors import AttnlabError
    from attnlab.run.checks import check_config, check_model_builds
    from attnlab.run.console import user_error
    from attnlab.run.job import is_multirun, record_failure

    restore = lambda: None  # noqa: E731
    try:
        # before Lightning is even imported: a typo or a misfit of components costs a second
        check_config(cfg)
        check_model_builds(cfg)
        from attnlab.run.distributed import prepare_ddp_job
        from attnlab.run.pipeline import train

        from hydra.core.hydra_config import HydraConfig

        restore = prepare_ddp_job(cfg, HydraConfig.get())
        result = train(cfg)
    except Exception as exc:
        if not cfg.get("resume"):  # a resumed run's directory keeps its own story
            record_failure(cfg, exc)  # the run directory says what happened, for the user and the report
        if is_multirun():
            # one failed job must not stop the sweep: record it for the report and go on
            logging.getLogger("attnlab").exception("job failed")
            print(f"attnlab: job failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return float("nan")
        if isinstance(exc, AttnlabError):
            sys.exit(user_error(exc))
        raise
    finally:
        restore()
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from attnlab.run.console import print_result

    if rank_zero_only.rank == 0:  # DDP ranks > 0 finish the same job silently
        print_result(result)
    metric = cfg.get("optimized_metric")
    return result.metrics.get(metric) if metric else None


if __name__ == "__main__":
    refuse_missing_resume_dir(sys.argv)
    main()

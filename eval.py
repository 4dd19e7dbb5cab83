"""Evaluate a checkpoint (Hydra, like train.py).

    python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    python eval.py ckpt_path=... split=val decoding.strategy=beam decoding.beam_size=5
    python eval.py ckpt_path=... data=numbers data.seed=7     # other data than the checkpoint's
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import attnlab.run.resolvers  # noqa: F401  (the config tree's own resolvers)

os.environ.setdefault("ATTNLAB_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from attnlab.errors import AttnlabError
    from attnlab.run.checks import EVAL_RULES, check_config
    from attnlab.run.console import user_error
    from attnlab.run.results import RunResult

    try:
        check_config(cfg, EVAL_RULES)
        from attnlab.cli.evaluate import evaluate

        result = evaluate(cfg)
    except AttnlabError as exc:
        ckpt = OmegaConf.select(cfg, "ckpt_path", throw_on_missing=False)
        failed = RunResult(status="failed", kind="eval", checkpoint=ckpt, output_dir=str(cfg.paths.output_dir))
        failed.error = f"{type(exc).__name__}: {exc}"
        failed.write(cfg.paths.output_dir)  # the run directory says what happened
        sys.exit(user_error(exc, "attnlab eval"))
    from rich.console import Console

    console = Console()
    intervals = result.extras.get("intervals") or {}
    for key, value in sorted(result.metrics.items()):
        bound = intervals.get(key)
        console.print(f"{key:>22}  {value:.4f}" + (f"  95 % interval [{bound['low']:.4f}, {bound['high']:.4f}] ({bound['method']})" if bound else ""), highlight=False)
    for key, value in sorted(result.extras.items()):
        if key.endswith("signature"):
            console.print(f"{key.replace('_', ' ')}: {value}")
    console.print(f"predictions: {result.extras['predictions']}\nmetrics: {Path(result.output_dir) / 'metrics.json'}")


if __name__ == "__main__":
    main()

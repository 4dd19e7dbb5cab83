"""Evaluate a checkpoint (Hydra, like train.py).

    python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    python eval.py ckpt_path=... split=val decoding.strategy=beam decoding.beam_size=5
    python eval.py ckpt_path=... data=numbers data.seed=7     # other data than the checkpoint's
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import attnlab.resolvers  # noqa: F401  (the config tree's own resolvers)

os.environ.setdefault("ATTNLAB_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from rich.console import Console

    from attnlab.checkpoints import CheckpointError
    from attnlab.checks import ConfigError, DataError
    from attnlab.evaluate import evaluate

    try:
        result = evaluate(cfg)
    except (CheckpointError, ConfigError, DataError) as exc:
        sys.exit(f"attnlab eval: {exc}")
    console = Console()
    for key, value in sorted(result["metrics"].items()):
        console.print(f"{key:>22}  {value:.4f}")
    console.print(f"BLEU signature: {result['bleu_signature']}")
    console.print(f"hypotheses: {result['hypotheses']}\nmetrics: {Path(result['hypotheses']).parent / 'metrics.json'}")


if __name__ == "__main__":
    main()

"""Averaging the weights of several checkpoints of one model, as NMT toolkits do.

    attnlab-average --out avg.ckpt run/checkpoints/epoch_007.ckpt run/checkpoints/epoch_008.ckpt
    attnlab-average --out avg.ckpt --dir run/checkpoints --last 3
(keep every epoch's checkpoint with ``callbacks.model_checkpoint.save_top_k=-1``)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from attnlab import arguments as args_
from attnlab.errors import AttnlabError, CheckpointError
from attnlab.tasks.checkpoints import read_checkpoint

KEPT = ("epoch", "global_step", "pytorch-lightning_version", "hparams_name", "hyper_parameters")


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Average the floating-point weights of checkpoints of one model; the rest comes from the last."""
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(paths)}")
    payloads = [read_checkpoint(p) for p in paths]
    keys = set(payloads[0]["state_dict"])
    for path, payload in zip(paths[1:], payloads[1:]):
        if set(payload["state_dict"]) != keys:
            raise CheckpointError(f"{path} holds other weights than {paths[0]}: not the same model")
    averaged = {}
    for key in payloads[0]["state_dict"]:
        tensors = [p["state_dict"][key] for p in payloads]
        if tensors[0].is_floating_point():
            averaged[key] = torch.stack([t.float() for t in tensors]).mean(dim=0).to(tensors[0].dtype)
        else:
            averaged[key] = tensors[-1]
    # what rebuilds the model, read and checked by read_checkpoint; not the training state, nor
    # anything else a file may have carried
    result = {k: v for k, v in payloads[-1].items() if k in KEPT}
    result["state_dict"] = averaged
    result["averaged_from"] = [str(p) for p in paths]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, out)
    return out


def newest_checkpoints(directory: str | Path, last: int) -> List[Path]:
    found = sorted((p for p in Path(directory).glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime)
    if len(found) < last:
        raise CheckpointError(f"{directory} holds {len(found)} epoch checkpoints, fewer than --last {last}")
    return found[-last:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-average", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", help="checkpoint files to average")
    parser.add_argument("--dir", type=args_.existing_dir, help="take the newest checkpoints of this directory instead")
    parser.add_argument("--last", type=args_.integer(2, 1000), default=5, help="how many of the newest (with --dir), 2 to 1000")
    parser.add_argument("--out", required=True, type=args_.output_file(), help="the averaged checkpoint to write")
    parser.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    args = parser.parse_args(argv)
    if args.dir and args.checkpoints:
        parser.error("give checkpoint files or --dir, not both")
    try:
        paths = newest_checkpoints(args.dir, args.last) if args.dir else [Path(p) for p in args.checkpoints]
        args_.check_output(parser, "--out", args.out, paths, force=args.force)
        out = average_checkpoints(paths, args.out)
    except AttnlabError as exc:
        print(f"attnlab-average: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: the average of {len(paths)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())

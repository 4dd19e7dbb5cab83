"""Ask a masked-LM checkpoint (task=mlm) what fills each [MASK] of a text.

    attnlab-fill-mask --ckpt run/checkpoints/last.ckpt "In the beginning God created the [MASK]."
    echo "a [MASK] of the family Felidae" | attnlab-fill-mask --ckpt model.ckpt --top-k 3

For every input, one line per [MASK] with the ``--top-k`` tokens and their probabilities, best
first (``token (0.231)  token (0.102) ...``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from attnlab import arguments as args_
from attnlab.cli.translate import read_stdin_lines
from attnlab.errors import AttnlabError
from attnlab.tasks.checkpoints import load_task
from attnlab.tasks.mlm import MASK_MARK

MAX_TOP_K = 1000  # a screenful per mask is already more than anyone reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-fill-mask", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="*", help=f"texts with {MASK_MARK} (default: one per line on stdin)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint of task=mlm")
    parser.add_argument("--top-k", type=args_.integer(1, MAX_TOP_K), default=5, help=f"how many tokens per mask, 1 to {MAX_TOP_K}")
    args = parser.parse_args(argv)
    try:
        texts = [t for t in (args.text or read_stdin_lines()) if t.strip()]
        if not texts:
            parser.error("nothing to fill: give texts as arguments or on stdin")
        missing = [t for t in texts if MASK_MARK not in t]
        if missing:
            parser.error(f"no {MASK_MARK} in {missing[0]!r}")
        task = load_task(args.ckpt)
    except AttnlabError as exc:
        print(f"attnlab-fill-mask: {exc}", file=sys.stderr)
        return 2
    if not hasattr(task, "fill_mask"):
        print(f"attnlab-fill-mask: {args.ckpt} holds a {task.name} model, not a masked language model (task=mlm)", file=sys.stderr)
        return 2
    for text, masks in zip(texts, task.fill_mask(texts, args.top_k)):
        if len(texts) > 1:
            print(text)
        for ranked in masks:
            print("  ".join(f"{token} ({p:.3f})" for token, p in ranked))
    return 0


if __name__ == "__main__":
    sys.exit(main())

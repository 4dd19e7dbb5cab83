"""Continue text with a language-model checkpoint (task=lm).

    attnlab-generate --ckpt run/checkpoints/last.ckpt "ROMEO:"
    echo "To be" | attnlab-generate --ckpt model.ckpt --max-new-tokens 100 --temperature 0.8 --top-k 20 --seed 1

Prints, for every prompt, the prompt and its continuation (``--no-prompt``: the continuation
alone), a blank line between samples. ``--temperature 0`` is greedy decoding; the same ``--seed``
gives the same text. Characters the model never saw are read as unknown, with a warning.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Optional, Sequence

from attnlab.cli.translate import read_stdin_lines
from attnlab.errors import AttnlabError
from attnlab.tasks.checkpoints import load_task


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="*", help="prompts (default: stdin, read whole as one prompt)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint of task=lm")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample among the most likely tokens that make up probability p")
    parser.add_argument("--seed", type=int, default=None, help="the same seed, the same text")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole sequence every step (slow; the cache's reference)")
    parser.add_argument("--no-prompt", action="store_true", help="print the continuation only")
    args = parser.parse_args(argv)
    if args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be at least 1")
    if args.temperature < 0:
        parser.error("--temperature must be >= 0")
    if args.top_k is not None and args.top_k < 1:
        parser.error("--top-k must be at least 1")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        parser.error("--top-p must be in (0, 1]")
    try:
        prompts = args.prompt or ["\n".join(read_stdin_lines())]
        task = load_task(args.ckpt)
    except AttnlabError as exc:
        print(f"attnlab-generate: {exc}", file=sys.stderr)
        return 2
    if not hasattr(task, "generate"):
        print(f"attnlab-generate: {args.ckpt} holds a {task.name} model, not a language model (task=lm)", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        texts = task.generate(prompts, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, use_cache=not args.no_cache)
    for warning in caught:
        if "training text never had" in str(warning.message):
            print(f"attnlab-generate: warning: {warning.message}", file=sys.stderr)
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        if i:
            print()
        print(text if args.no_prompt else prompt + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

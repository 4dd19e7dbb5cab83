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

from rich.console import Console
from rich.progress import Progress

from attnlab import arguments as args_
from attnlab.cli.translate import read_stdin_lines
from attnlab.errors import AttnlabError
from attnlab.tasks.checkpoints import load_task

MAX_NEW_TOKENS = 100_000  # a bound on the work one command asks for: tens of minutes of a small model on a CPU
PROGRESS_FROM = 2_000  # new tokens in all: from here a progress bar on stderr


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="*", help="prompts (default: stdin, read whole as one prompt)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint of task=lm")
    parser.add_argument("--max-new-tokens", type=args_.integer(1, MAX_NEW_TOKENS), default=200, help=f"tokens per prompt, 1 to {MAX_NEW_TOKENS:,}")
    parser.add_argument("--temperature", type=args_.temperature, default=0.8, help="0: greedy; else 0.01 to 100")
    parser.add_argument("--top-k", type=args_.integer(1), default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=args_.probability_mass, default=None, help="sample among the most likely tokens that make up probability p, in (0, 1]")
    parser.add_argument("--seed", type=args_.seed, default=None, help=f"the same seed, the same text (0 to {args_.SEED_MAX})")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole sequence every step (slow; the cache's reference)")
    parser.add_argument("--no-prompt", action="store_true", help="print the continuation only")
    args = parser.parse_args(argv)
    try:
        prompts = args.prompt or ["\n".join(read_stdin_lines())]
        if not any(prompts):
            parser.error("nothing to continue: give prompts as arguments or on stdin")
        task = load_task(args.ckpt)
    except AttnlabError as exc:
        print(f"attnlab-generate: {exc}", file=sys.stderr)
        return 2
    if not hasattr(task, "generate"):
        print(f"attnlab-generate: {args.ckpt} holds a {task.name} model, not a language model (task=lm)", file=sys.stderr)
        return 2
    total = len(prompts) * args.max_new_tokens
    # a bar on stderr for long work only: stdout stays the text alone
    with warnings.catch_warnings(record=True) as caught, Progress(console=Console(stderr=True), transient=True, disable=total < PROGRESS_FROM) as bar:
        warnings.simplefilter("always")
        tokens = bar.add_task("generating", total=total)
        texts = task.generate(
            prompts, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed,
            use_cache=not args.no_cache, progress=lambda: bar.advance(tokens),
        )
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

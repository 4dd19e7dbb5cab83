"""Write one self-contained HTML page of a checkpoint's attention on your own inputs: every kind of
attention (encoder self, decoder self, cross; self and pooling for a classifier), every layer and
head; hover a token to see where it attends, click a thumbnail to pick a head. Open the file in any
browser: no server, no network.

    attnlab-view --ckpt logs/.../checkpoints/last.ckpt "En el principio creó Dios los cielos y la tierra." --out view.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from attnlab import arguments as args_
from attnlab.errors import AttnlabError, ConfigError


def inputs_from(texts: Sequence[str], parser: argparse.ArgumentParser) -> List[str]:
    for i, text in enumerate(texts):
        if not text.strip():
            parser.error(f"input {i + 1} is empty; give the text to look at")
    return list(texts)


def write_view(ckpt: str, texts: Sequence[str], out: Path, title: Optional[str] = None) -> Path:
    from attnlab.heads.viewer import render
    from attnlab.tasks.checkpoints import load_task

    task = load_task(ckpt)
    examples = task.attention_examples(list(texts))
    if not examples or not any(example.maps for example in examples):
        raise ConfigError(f"{ckpt} holds a {task.name} model with no attention weights to show (choices: {task.hparams.get('choices') or {}})")
    page = render(texts, examples, title or f"attention of {Path(ckpt).name} ({task.name})")
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-view", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="one or more inputs (a source sentence, a text to classify, a prompt)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint (.ckpt) of any task")
    parser.add_argument("--out", type=args_.output_file(".html", ".htm"), default=Path("view.html"), help="the page to write (default: view.html)")
    parser.add_argument("--title", type=args_.name, help="the page's title")
    args = parser.parse_args(argv)
    texts = inputs_from(args.texts, parser)
    args_.check_output(parser, "--out", args.out, [Path(args.ckpt)])
    try:
        path = write_view(args.ckpt, texts, args.out, args.title)
    except AttnlabError as exc:
        print(f"attnlab-view: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())

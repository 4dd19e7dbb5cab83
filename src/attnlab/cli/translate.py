"""Translate with a checkpoint alone (its vocabularies and tokenizers are inside it).

    attnlab-translate --ckpt run/checkpoints/last.ckpt "veintiún mil" "ciento un millones"
    echo "tres mil" | attnlab-translate --ckpt model.ckpt --beam 5 [--n-best 3]
    attnlab-translate --ckpt model.ckpt --plot attention.png "doscientos dos"

Prints one translation per input line, in order (an empty line gets an empty line, so
``attnlab-translate < src > hyp`` stays line-aligned; with ``--n-best K``: K lines
``score<TAB>translation`` per input line, best first). A sentence longer than a learned-position
model can read is cut to what it reads, with a warning naming the line. ``--plot`` saves the
cross-attention of the first sentence (every layer and head) as a heatmap.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from attnlab import arguments as args_
from attnlab.errors import AttnlabError
from attnlab.run.memory import keep_freed_memory
from attnlab.tasks.checkpoints import load_task
from attnlab.tasks.translator import TruncatedInputWarning

MAX_BEAM = 256  # a bound on the work (and memory) one sentence may ask for
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def batches(items: List[str], size: int = 64):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_stdin_lines() -> List[str]:
    """stdin's lines, in order, empty ones included; bytes that are not UTF-8 are an error naming the line."""
    lines = []
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as exc:
            raise AttnlabError(f"stdin line {number} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return lines


def plot_attention(translator, sentence: str, path: str) -> None:
    from attnlab import plots

    example = translator.attention_maps([sentence])[0]
    fig = plots.attention_figure(example["weights"]["cross"], example["output"], example["source"], f"cross-attention: {sentence} → {example['hypothesis']}")
    plots.save(fig, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-translate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="*", help="sentences to translate (default: one per line on stdin)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by train.py")
    parser.add_argument("--beam", type=args_.integer(1, MAX_BEAM), default=1, help=f"beam size (1 = greedy; at most {MAX_BEAM})")
    parser.add_argument("--alpha", type=args_.number(0, 10), default=0.6, help="GNMT length penalty for beam search, 0 to 10")
    parser.add_argument("--n-best", type=args_.integer(1, MAX_BEAM), default=1, help="print this many beam hypotheses per sentence, as 'score<TAB>translation'")
    parser.add_argument("--plot", type=args_.output_file(*PLOT_SUFFIXES), help="save the first sentence's attention heatmap to this file (.png, .pdf or .svg)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.n_best > args.beam:
        parser.error(f"argument --n-best: must be at most --beam ({args.beam}); got {args.n_best}")
    if args.plot:
        args_.check_output(parser, "--plot", args.plot, [Path(args.ckpt)])
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        parser.error(f"--device {args.device}: {exc}")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {args.device}: attnlab-translate runs on cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        parser.error(f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    try:
        lines = args.text or read_stdin_lines()
        if not any(line.strip() for line in lines):
            parser.error("nothing to translate: give sentences as arguments or on stdin")
        task = load_task(args.ckpt, map_location=device)
        # as train.py: with glibc's defaults every big buffer decoding allocates (a beam batch's
        # cache growing, its logits) is paged in anew: 14,800 page faults a beam run of
        # benchmarks/decoding.py, 1 with freed memory kept
        keep_freed_memory()
    except AttnlabError as exc:
        print(f"attnlab-translate: {exc}", file=sys.stderr)
        return 2
    translator = getattr(task, "translator", None)
    if translator is None:
        print(f"attnlab-translate: {args.ckpt} holds a {task.name} model, not a translation model", file=sys.stderr)
        return 2
    # one output per input line, always: an empty line gets an empty translation, in its place
    todo = [line for line in lines if line.strip()]
    limit = translator.max_source_tokens
    for number, line in enumerate(lines, 1):
        if limit is not None and line.strip() and translator.source_tokens(line) > limit:
            print(f"attnlab-translate: warning: line {number}: {translator.truncation_note(translator.source_tokens(line))}", file=sys.stderr)
    decoding = {"strategy": "beam" if args.beam > 1 else "greedy", "beam_size": args.beam, "alpha": args.alpha}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedInputWarning)  # said above, with line numbers
        if args.n_best > 1:
            results = iter([hyps for chunk in batches(todo) for hyps in translator.translate_n_best(chunk, args.beam, args.n_best, args.alpha)])
            for line in lines:
                hyps = next(results) if line.strip() else [("", 0.0, 0.0)] * args.n_best
                for text, score, _ in hyps:
                    print(f"{score:.4f}\t{text}")
        else:
            results = iter([out for chunk in batches(todo) for out in translator.translate(chunk, decoding)])
            for line in lines:
                print(next(results) if line.strip() else "")
    if args.plot:
        plot_attention(translator, todo[0], args.plot)
        print(f"attention heatmap: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

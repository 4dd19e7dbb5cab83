"""Translate with a checkpoint alone (its vocabularies and tokenizers are inside it).

    attnlab-translate --ckpt run/checkpoints/last.ckpt "veintiún mil" "ciento un millones"
    echo "tres mil" | attnlab-translate --ckpt model.ckpt --beam 5 [--n-best 3]
    attnlab-translate --ckpt model.ckpt --plot attention.png "doscientos dos"

Prints one translation per line (with ``--n-best K``: K lines ``score<TAB>translation`` per
sentence, best first). ``--plot`` saves the cross-attention of the first sentence
(every layer and head) as a heatmap.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from attnlab.errors import AttnlabError
from attnlab.tasks.checkpoints import load_task


def translate_lines(translator, lines: List[str], beam: int, alpha: float, batch_size: int = 64) -> List[str]:
    decoding = {"strategy": "beam" if beam > 1 else "greedy", "beam_size": beam, "alpha": alpha}
    out: List[str] = []
    for start in range(0, len(lines), batch_size):
        out.extend(translator.translate(lines[start : start + batch_size], decoding))
    return out


def plot_attention(translator, sentence: str, path: str) -> None:
    from attnlab import plots

    example = translator.attention_maps([sentence])[0]
    fig = plots.attention_figure(example["weights"]["cross"], example["output"], example["source"], f"cross-attention: {sentence} → {example['hypothesis']}")
    plots.save(fig, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-translate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="*", help="sentences to translate (default: one per line on stdin)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by train.py")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    parser.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty for beam search")
    parser.add_argument("--n-best", type=int, default=1, help="print this many beam hypotheses per sentence, as 'score<TAB>translation'")
    parser.add_argument("--plot", help="save the first sentence's attention heatmap to this PNG file")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.beam < 1:
        parser.error("--beam must be at least 1")
    if not 1 <= args.n_best <= args.beam:
        parser.error("--n-best must be between 1 and --beam")
    lines = args.text or [line.rstrip("\n") for line in sys.stdin]
    lines = [line for line in lines if line.strip()]
    if not lines:
        parser.error("nothing to translate: give sentences as arguments or on stdin")
    try:
        task = load_task(args.ckpt, map_location=args.device)
    except AttnlabError as exc:
        print(f"attnlab-translate: {exc}", file=sys.stderr)
        return 2
    translator = getattr(task, "translator", None)
    if translator is None:
        print(f"attnlab-translate: {args.ckpt} holds a {task.name} model, not a translation model", file=sys.stderr)
        return 2
    if args.n_best > 1:
        for hyps in translator.translate_n_best(lines, args.beam, args.n_best, args.alpha):
            for text, score, _ in hyps:
                print(f"{score:.4f}\t{text}")
    else:
        for translation in translate_lines(translator, lines, args.beam, args.alpha):
            print(translation)
    if args.plot:
        plot_attention(translator, lines[0], args.plot)
        print(f"attention heatmap: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

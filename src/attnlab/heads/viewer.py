"""One self-contained HTML page of a model's attention on a few inputs: every kind of attention,
layer and head, a head view (hover a token to see where it attends) and a model view (all heads
as thumbnails). No server and no network when it is opened: the data and the script are in it.

Why not bertviz: its ``head_view``/``model_view`` pages load require.js, d3 and jQuery from
cdnjs.cloudflare.com when opened (no network: a blank page), the package declares transformers,
boto3, sentencepiece and IPython as dependencies, and the head and model views are two pages.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Dict, List, Sequence

import numpy as np

from attnlab.tasks.base import AttentionExample

KIND_NAMES: Dict[str, str] = {
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder self-attention",
    "cross": "cross-attention (decoder → source)",
    "self": "self-attention",
    "pooling": "pooling query",
}
DIGITS = 6  # weights are written with 6 decimals: what a test reads back agrees with the tensors to 5e-7


def page_data(inputs: Sequence[str], examples: Sequence[AttentionExample]) -> Dict:
    """The page's data: per example, per kind, the row and column tokens and (layers, heads, rows,
    cols) weights."""
    return {
        "kind_names": KIND_NAMES,
        "examples": [
            {
                "input": text,
                "caption": example.caption,
                "kinds": {
                    kind: {"rows": list(amap.rows), "cols": list(amap.cols), "layers": [layer.astype(np.float64).round(DIGITS).tolist() for layer in amap.layers]}
                    for kind, amap in example.maps.items()
                },
            }
            for text, example in zip(inputs, examples)
        ],
    }


def render(inputs: Sequence[str], examples: List[AttentionExample], title: str) -> str:
    """The page as a string."""
    template = resources.files("attnlab.heads").joinpath("viewer.html").read_text(encoding="utf-8")
    # inside <script>, "</" would end the element early: JSON allows "<\/" for it
    data = json.dumps(page_data(inputs, examples), ensure_ascii=False).replace("</", "<\\/")
    before, after = template.split("__DATA__")  # the title goes only where the template has it, never into the data
    title = html.escape(title)
    return before.replace("__TITLE__", title) + data + after.replace("__TITLE__", title)

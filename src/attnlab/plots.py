"""Figures: attention heatmaps (Bahdanau et al. 2015 Fig. 3) and BLEU by length (Fig. 2)."""

from __future__ import annotations

import textwrap
from typing import Dict, List, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

def draw_heatmap(ax, weights: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str = "", row_labels: bool = True, col_labels: bool = True) -> None:
    """weights (len(rows), len(cols)) in [0, 1]; white = 0, black = 1, as in the paper. Signed
    weights (differential attention's difference of two maps) go on a red-blue scale from -1 to 1.
    ``row_labels``/``col_labels`` false: no ticks on that axis (a grid labels its outer edge only;
    matplotlib's tick objects are most of a heatmap's drawing time)."""
    if weights.size and weights.min() < 0:
        ax.imshow(weights, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto", interpolation="nearest")
    else:
        ax.imshow(weights, cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    small = max(len(rows), len(cols)) > 30
    ax.set_xticks(range(len(cols)) if col_labels else [])
    if col_labels:
        ax.set_xticklabels(cols, rotation=90, fontsize=5 if small else 7)
    ax.set_yticks(range(len(rows)) if row_labels else [])
    if row_labels:
        ax.set_yticklabels(rows, fontsize=5 if small else 7)
    if title:
        ax.set_title(title, fontsize=8)


def attention_figure(layers: List[np.ndarray], rows: Sequence[str], cols: Sequence[str], title: str) -> Figure:
    """A grid with one heatmap per layer (rows) and head (columns); layers: list of (H, T, S)."""
    n_layers, n_heads = len(layers), layers[0].shape[0]
    cell = 0.22
    width = min(4 + n_heads * max(2.5, cell * len(cols)), 24)
    height = min(1 + n_layers * max(2.5, cell * len(rows)), 24)
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(width, height), squeeze=False)
    for layer, w in enumerate(layers):
        for head in range(n_heads):
            sub = f"layer {layer + 1}, head {head + 1}" if n_layers * n_heads > 1 else ""
            # every panel shows the same tokens: words on the left column and the bottom row only
            # (the same figure to read, and a third of the text to draw at every evaluation)
            draw_heatmap(axes[layer][head], w[head][: len(rows), : len(cols)], rows, cols, sub, row_labels=head == 0, col_labels=layer == n_layers - 1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def matrix_figure(values: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str, row_axis: str = "", col_axis: str = "") -> Figure:
    """A counts matrix (a confusion matrix), shaded by row share, with the counts written in."""
    values = np.asarray(values)
    share = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.35 * max(len(rows), len(cols)), 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    small = max(len(rows), len(cols)) > 20
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=90, fontsize=5 if small else 7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=5 if small else 7)
    ax.set_xlabel(col_axis)
    ax.set_ylabel(row_axis)
    if len(rows) * len(cols) <= 900:
        for (r, c), count in np.ndenumerate(values):
            if count:
                ax.text(c, r, str(int(count)), ha="center", va="center", fontsize=4 if small else 6, color="white" if share[r, c] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def bleu_by_length_figure(
    series: Mapping[str, Sequence[Mapping]],
    title: str = "BLEU by source length",
    y: str = "bleu",
    y_label: str = "BLEU",
    x: str = "min_len",
    x_label: str = "source length (words)",
    seen: Optional[Sequence[float]] = None,
) -> Figure:
    """One line per configuration; series maps a label to rows with ``x`` (and ``bucket`` as its
    tick label when there is one) and ``y``. ``seen``: the (low, high) range training saw, shaded."""
    fig, ax = plt.subplots(figsize=(8, 5))
    ticks: Dict[float, str] = {}
    colors = plt.get_cmap("tab20").colors  # 20 distinct colours; line style tells the architecture
    for i, (label, rows) in enumerate(sorted(series.items())):
        rows = sorted(rows, key=lambda r: r[x])
        style = "--" if label.startswith("transformer") else "-"
        ax.plot([r[x] for r in rows], [r[y] for r in rows], style, marker="o", color=colors[i % len(colors)], label=label)
        ticks.update({r[x]: str(r.get("bucket", r[x])) for r in rows})
    if seen is not None:
        ax.axvspan(seen[0] - 0.5, seen[1] + 0.5, color="0.85", zorder=0, label="lengths seen in training")
    if len(ticks) <= 30:
        ax.set_xticks(sorted(ticks))
        ax.set_xticklabels([ticks[k] for k in sorted(ticks)], rotation=90 if len(ticks) > 12 else 0)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def curve_figure(series: Mapping[str, Mapping[float, float]], x_label: str, y_label: str) -> Figure:
    """One line per configuration over a numeric setting (log x when it spans a decade or more)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = sorted({x for points in series.values() for x in points})
    for name, points in sorted(series.items()):
        keys = sorted(points)
        ax.plot(keys, [points[k] for k in keys], marker="o", label=name)
    if xs and xs[0] > 0 and xs[-1] / xs[0] >= 10:
        ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{int(x):,}" for x in xs])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def heatmap_grid_figure(panels: Sequence[Mapping], columns: int = 4, title: Optional[str] = None) -> Figure:
    """Several configurations' alignments for the same sentence.

    Each panel: ``label``, ``weights`` (T, S), ``source`` and ``output`` tokens.
    """
    n = len(panels)
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        draw_heatmap(ax, np.asarray(panel["weights"]), panel["output"], panel["source"], panel["label"])
    if title:
        # a long source sentence would run off a narrow figure: wrap it to the figure's width
        fig.suptitle(textwrap.fill(title, width=int(14 * 4.2 * columns)), fontsize=10)
    fig.tight_layout()
    return fig


def head_grid_figure(grids: Mapping[str, Mapping[str, Optional[np.ndarray]]], title: str) -> Figure:
    """Per kind of attention (a row), a panel per measure (importance, entropy, ...): layers × heads
    grids with each value written in. ``grids``: kind -> measure -> (layers, heads) or None."""
    kinds = list(grids)
    measures = list(next(iter(grids.values()))) if grids else []
    widest = max((g.shape[1] for m in grids.values() for g in m.values() if g is not None), default=1)
    fig, axes = plt.subplots(len(kinds), len(measures), figsize=(1.2 + 0.55 * widest * len(measures), 0.8 + 1.9 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for col, measure in enumerate(measures):
            ax, grid = axes[row, col], grids[kind][measure]
            if grid is None:
                ax.axis("off")
                ax.text(0.5, 0.5, f"{kind}: no {measure}", ha="center", va="center", fontsize=8)
                continue
            image = ax.imshow(grid, cmap="viridis", aspect="auto", interpolation="nearest")
            ax.set_xticks(range(grid.shape[1]))
            ax.set_yticks(range(grid.shape[0]))
            ax.set_xlabel("head", fontsize=7)
            ax.set_ylabel("layer", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{kind}: {measure}", fontsize=8)
            if grid.size <= 150:
                middle = (np.nanmax(grid) + np.nanmin(grid)) / 2
                for (r, c), value in np.ndenumerate(grid):
                    ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=5, color="black" if value > middle else "white")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def pruning_figure(fractions: Sequence[float], lines: Mapping[str, Sequence[float]], band: Optional[Mapping[str, Sequence[float]]], reference: float, tolerance: float, higher_is_better: bool, y_label: str, title: str) -> Figure:
    """The metric against the fraction of heads switched off: one line per order, random orders as
    their mean with a min–max band, and the tolerance around the unpruned value dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [100 * f for f in fractions]
    if band is not None:
        ax.fill_between(xs, band["low"], band["high"], color="0.8", label="random orders (min–max)")
        ax.plot(xs, band["mean"], color="0.45", linestyle="--", marker=".", label="random orders (mean)")
    for name, values in lines.items():
        ax.plot(xs, values, marker="o", label=name)
    ax.axhline(reference - tolerance if higher_is_better else reference + tolerance, color="black", linestyle=":", linewidth=1, label=f"unpruned {'−' if higher_is_better else '+'} {tolerance:g}")
    ax.set_xlabel("heads switched off (%)")
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_png(fig: Figure, dpi: int = 80) -> bytes:
    """Draw a figure once and close it; the PNG bytes serve W&B, TensorBoard and files alike."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def png_to_array(png: bytes) -> np.ndarray:
    """PNG bytes -> (H, W, 3) uint8."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

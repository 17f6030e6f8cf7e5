"""Figures (matplotlib, drawn off-screen): the attribution grid of the paper's Figure 2
and line figures with one line per method (in the method registry's order)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uni.catalog import method_order
from uni.records import write_figure


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _heatmap(attribution: np.ndarray) -> np.ndarray:
    """Channel-summed attribution scaled to [-1, 1] by its 99th percentile of |A|."""
    summed = attribution.sum(0)
    scale = np.percentile(np.abs(summed), 99) or 1.0
    return np.clip(summed / scale, -1, 1)


SIGN_NOTE = (
    "Red: the pixel raised F_c, the explained class's score, from baseline to image; blue: "
    "lowered it. Each map is scaled by its own 99th percentile of |attribution| (one shared "
    "diverging scale, the colourbar). A map that is all red is one-signed: every pixel's "
    "path step raised F_c, as expected of UNI, whose baseline x' is searched for where the "
    "class's evidence is gone (F_c low)."
)


def attribution_grid(
    images: np.ndarray,
    attributions: dict[str, np.ndarray],
    baselines: np.ndarray | None,
    titles: Sequence[str],
    path: Path,
) -> Path:
    """The paper's Figure 2 layout: rows are images (``titles``: each one's id, explained
    class and its probability); columns the input, each method's attribution on one
    shared diverging scale (red positive, blue negative; a colourbar and a note on sign
    below) and UNI's baseline ``x'``."""
    plt = pyplot()
    methods = list(attributions)
    columns = 1 + len(methods) + (baselines is not None)
    fig, axes = plt.subplots(
        len(images), columns, figsize=(1.9 * columns, 1.9 * len(images) + 1.1), squeeze=False
    )
    shown = None
    for r, image in enumerate(images):
        panels = [("input", image.transpose(1, 2, 0), {})]
        panels += [
            (m, _heatmap(attributions[m][r]), {"cmap": "bwr", "vmin": -1, "vmax": 1})
            for m in methods
        ]
        if baselines is not None:
            panels.append(("UNI baseline x'", baselines[r].transpose(1, 2, 0), {}))
        for c, (name, panel, style) in enumerate(panels):
            ax = axes[r, c]
            drawn = ax.imshow(panel, **style)
            shown = drawn if style else shown
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        axes[r, 0].set_ylabel(titles[r], fontsize=7)
    fig.tight_layout(rect=(0, 0.16 if len(images) < 3 else 0.1, 1, 1))
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), orientation="horizontal",
                           fraction=0.04, pad=0.02, aspect=40)
        bar.set_label("attribution / its 99th percentile of |attribution|", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.text(0.5, 0.005, "\n".join(textwrap.wrap(SIGN_NOTE, 40 + 25 * columns)), ha="center",
             va="bottom", fontsize=7)
    return save_figure(fig, path)


def mean_curves(part, x: str):
    """Per method of the records ``part``, the mean ``value`` against column ``x`` and its
    95% bootstrap band: the ``curves`` and ``bands`` of :func:`line_figure`."""
    from uni.analysis.stats import bootstrap_interval

    curves, bands = {}, {}
    for method, group in part.groupby("method"):
        points = [(at, g["value"].mean(), *bootstrap_interval(g["value"].to_numpy(float)))
                  for at, g in sorted(group.groupby(x))]
        xs, means, lows, highs = map(np.array, zip(*points))
        curves[method], bands[method] = (xs, means), (lows, highs)
    return curves, bands


def line_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    legend: dict[str, str] | None = None,
) -> Path:
    """One line per method (mean over images), with an optional shaded interval;
    ``legend``: a method's label when not its name (e.g. with its AUC)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name in method_order(curves):
        x, y = curves[name]
        (line,) = ax.plot(x, y, marker="o" if len(x) <= 12 else None, ms=3,
                          label=(legend or {}).get(name, name))
        if bands and name in bands:
            ax.fill_between(x, *bands[name], color=line.get_color(), alpha=0.15)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    write_figure(fig, path)
    pyplot().close(fig)
    return path

"""Figures (matplotlib, drawn off-screen): the attribution grid of the paper's Figure 2
and line figures with one line per method (in the method registry's order)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uni.methods import method_order
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


def attribution_grid(
    images: np.ndarray,
    attributions: dict[str, np.ndarray],
    baselines: np.ndarray | None,
    titles: Sequence[str],
    path: Path,
) -> Path:
    """The paper's Figure 2 layout: rows are images; columns the input, each method's
    attribution (red positive, blue negative) and UNI's baseline ``x'``."""
    plt = pyplot()
    methods = list(attributions)
    columns = 1 + len(methods) + (baselines is not None)
    fig, axes = plt.subplots(
        len(images), columns, figsize=(1.9 * columns, 1.9 * len(images) + 0.3), squeeze=False
    )
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
            ax.imshow(panel, **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        axes[r, 0].set_ylabel(titles[r], fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def line_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """One line per method (mean over images), with an optional shaded interval."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name in method_order(curves):
        x, y = curves[name]
        (line,) = ax.plot(x, y, marker="o" if len(x) <= 12 else None, ms=3, label=name)
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

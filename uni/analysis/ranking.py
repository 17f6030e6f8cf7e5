"""One ranking of the methods across metrics, from records only (the aggregation step of
LATEC, Klein et al. 2024, "Navigating the Maze of Explainable AI: A Systematic Approach to
Evaluating Methods and Metrics", NeurIPS Datasets & Benchmarks: methods ranked per metric,
the ranks averaged across metrics, and the metrics' disagreement reported; LATEC has no
interval on the aggregate, this adds one).

Per model and image, the methods are ranked under each metric (1 = best; the direction
from :func:`uni.catalog.direction`; ties share their mean rank, as
:func:`scipy.stats.rankdata`). A method's **rank per metric** is its mean over images; its
**mean rank** averages its ranks over the metrics on each image, then over images, with a
95 % bootstrap interval over images (:func:`uni.analysis.stats.bootstrap_interval`). **Kendall's
W** (coefficient of concordance; Kendall & Babington Smith 1939, without tie correction)
treats the metrics as judges ranking the methods by their mean scores over the same
images as the table: 1 when every metric orders the methods alike, 0 when they share no
order.

The metrics ranked are the record names with a direction (side values and per-step
families such as ``stability_l1@4`` are left out unless named) on which every method has a
value; images count where every method has a finite value under every metric ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from uni.analysis import stats
from uni.catalog import direction, floor_methods, method_order, metric_order
from uni.records import write_csv, write_figure

# the headline record names ranked by default, in display order, when present (path
# monotonicity is a per-explanation diagnostic, not a record name: it has no place here)
HEADLINE = ("mufidelity", "deletion", "insertion", "road_morf", "road_lerf", "completeness")


def ranked_metrics(records: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[str]:
    """The record names ranked: ``metrics`` (default :data:`HEADLINE`) that the records
    hold with a direction and a finite value for every method."""
    names = HEADLINE if metrics is None else metrics
    methods = set(records["method"])
    present = []
    for name in names:
        part = records[(records["metric"] == name) & np.isfinite(records["value"].astype(float))]
        if len(part) and direction(name) is not None and set(part["method"]) == methods:
            present.append(name)
    return metric_order(present)


def image_ranks(records: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Long table ``image_id, metric, method, rank`` over the images complete for every
    method and metric (1 = best)."""
    part = records[records["metric"].isin(metrics)]
    wide = (part.assign(value=part["value"].astype(float))
            .pivot_table(index="image_id", columns=["metric", "method"], values="value",
                         aggfunc="mean"))
    wide = wide.replace([np.inf, -np.inf], np.nan).dropna()
    frames = []
    for metric in metrics:
        values = wide[metric].to_numpy()
        signed = values if direction(metric) == "lower" else -values
        ranks = rankdata(signed, axis=1)
        frames.append(pd.DataFrame(ranks, index=wide.index, columns=wide[metric].columns)
                      .stack().rename("rank").reset_index().assign(metric=metric))
    if not frames:
        return pd.DataFrame(columns=["image_id", "method", "rank", "metric"])
    return pd.concat(frames, ignore_index=True)


def kendalls_w(matrix: np.ndarray) -> float:
    """Kendall's W of an ``(m judges, n items)`` matrix of ranks (no tie correction)."""
    m, n = matrix.shape
    if m < 2 or n < 2:
        return float("nan")
    totals = matrix.sum(0)
    spread = ((totals - totals.mean()) ** 2).sum()
    return float(12 * spread / (m**2 * (n**3 - n)))


def ranking(records: pd.DataFrame, metrics: Sequence[str] | None = None
            ) -> tuple[pd.DataFrame, float, int]:
    """For one model's records: a method x (metric ranks, mean rank, low, high) table in
    mean-rank order, Kendall's W across the metrics and the number of images used."""
    names = ranked_metrics(records, metrics)
    ranks = image_ranks(records, names)
    if ranks.empty:
        return pd.DataFrame(), float("nan"), 0
    per_metric = ranks.groupby(["method", "metric"])["rank"].mean().unstack("metric")[names]
    per_image = ranks.groupby(["method", "image_id"])["rank"].mean()
    rows = {}
    for method in method_order(per_metric.index):
        values = per_image[method].to_numpy(dtype=float)
        low, high = stats.bootstrap_interval(values)
        rows[method] = {**per_metric.loc[method].to_dict(), "mean rank": values.mean(),
                        "low": low, "high": high}
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("mean rank")
    complete = records["image_id"].isin(set(ranks["image_id"]))  # the table's images
    means = (records[records["metric"].isin(names) & complete]
             .assign(value=lambda f: f["value"].astype(float))
             .pivot_table(index="metric", columns="method", values="value", aggfunc="mean")
             .loc[names])
    judges = np.stack([rankdata(means.loc[n] if direction(n) == "lower" else -means.loc[n])
                       for n in names])
    return table, kendalls_w(judges), int(ranks["image_id"].nunique())


def ranking_figure(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Rank per metric (x: metrics, y: mean rank, 1 at the top), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c for c in table.columns if c not in ("mean rank", "low", "high")]
    figure, axis = plt.subplots(figsize=(1.2 * len(metrics) + 4, 4.5))
    for method, row in table.iterrows():
        axis.plot(range(len(metrics)), row[metrics].to_numpy(float), marker="o", label=method)
    axis.set_xticks(range(len(metrics)), metrics, rotation=30, ha="right")
    axis.invert_yaxis()
    axis.set_ylabel("mean rank over images (1 = best)")
    axis.set_title(title)
    axis.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    figure.tight_layout()
    write_figure(figure, path)
    plt.close(figure)
    return path


def ranking_lines(records: pd.DataFrame, out: Path, suffix: str = "") -> list[str]:
    """Markdown lines for one model: the table, W, the figure. A method run on a subset
    of the images would cut every method's ranking down to that subset: the main table
    leaves it out (and says so), and a second one ranks every method on the subset."""
    partial = stats.subset_methods(records)
    if partial.empty:
        return _table_lines(records, out, suffix)
    left_out = ", ".join(f"{method} ({n} images)" for method, n in partial.items())
    return [*_table_lines(records[~records["method"].isin(partial.index)], out, suffix), "",
            f"Left out above, run on a subset of the images: {left_out}. Every method on "
            "the images they all have:", "",
            *_table_lines(records, out, f"{suffix}-subset")]


def _table_lines(records: pd.DataFrame, out: Path, suffix: str) -> list[str]:
    table, w, images = ranking(records)
    if table.empty:
        return ["(no metric with a value for every method)"]
    figure = ranking_figure(table, out / "figures" / f"ranking{suffix}.png",
                            "Rank per metric (one line per method)")
    shown = table.copy()
    shown["mean rank"] = [f"{r['mean rank']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
                          for _, r in table.iterrows()]
    shown = shown.drop(columns=["low", "high"]).round(2)
    write_csv(shown, out / "tables" / f"ranking{suffix}.csv", index=True)
    # the trivial maps are ranked with the methods (a floor above a method says something
    # about the metrics) and labelled as in every other table
    floors = floor_methods()
    labelled = shown.rename(index={m: f"floor: {m}" for m in shown.index if m in floors})
    return [labelled.to_markdown(), "",
            f"Kendall's W across the {len(table.columns) - 3} metrics: {w:.2f} "
            f"({images} images complete for every method and metric; 1: the metrics order "
            f"the methods alike, 0: no shared order).", "",
            f"![ranking]({figure.relative_to(out)})"]

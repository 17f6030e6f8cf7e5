"""Paired statistics on records: does one method beat the others on the same images?

Every function takes a long record frame (one row per image x method x metric, docs/design.md §5)
and pairs methods on the same unit, ``(model, image_id)``: the same image, subsets, noise
draws and attacks for every method (docs/design.md §3). A unit counts for a pair of methods when
both have a finite value there.

- :func:`paired_differences`: per method, the mean paired difference to a reference
  method with a percentile bootstrap interval (Efron & Tibshirani 1993), the Wilcoxon
  signed-rank test (Wilcoxon 1945) and Holm's step-down correction across the methods
  compared (Holm 1979).
- :func:`friedman_posthoc`: Friedman's rank test over all methods (Friedman 1937) and the
  Nemenyi post-hoc test, drawn as a critical-difference diagram (Demšar 2006, JMLR 7).
- :func:`verdict`: the rule that turns the paired differences into ``holds``, ``fails``
  or ``inconclusive`` for "the reference is better than every other method".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from uni.catalog import lower_is_better
from uni.records import write_figure

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
ALPHA = 0.05
MIN_PAIRS = 5  # fewer paired images than this: no verdict
UNIT = ["model", "image_id"]
_VERDICT_RULE = (
    f"A claim \"UNI is better than every other method on M\" **holds** when, for every "
    f"other method, the paired difference (that method minus UNI, over the images where "
    f"both are finite) favours UNI: Holm-corrected Wilcoxon signed-rank p < {ALPHA}, "
    f"the signed ranks on UNI's side (their sum over the images UNI wins larger), and "
    f"the {CONFIDENCE:.0%} bootstrap interval of the mean difference entirely on UNI's "
    f"side of 0 (a skewed difference whose mean and ranks disagree decides nothing). "
    f"It **fails** when at least one method is better than UNI by the same "
    f"test. Otherwise it is **inconclusive**. Both need n >= N(m) paired images, the "
    f"fewest at which the test can reach the threshold with m methods compared: the "
    f"smallest Wilcoxon p at n pairs (every difference on one side, no ties: 2 / 2^n) "
    f"times m (Holm's factor for the smallest p) must be below {ALPHA}, and n >= "
    f"{MIN_PAIRS} (:func:`uni.analysis.stats.min_pairs`: {{examples}}). Holm corrects across "
    f"the methods of one claim; the column across claims corrects the deciding p "
    f"across every claim of the report (Holm)."
)


def bootstrap_interval(
    values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE, seed=0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (Efron & Tibshirani 1993; deterministic
    for a given seed); NaN values are left out."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), float(values[0])
    generator = np.random.default_rng(seed)
    means = values[generator.integers(0, len(values), (samples, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down family-wise correction: the i-th smallest of m p-values is
    multiplied by m - i + 1 (i from 1), made non-decreasing in that order and capped at 1
    (as ``statsmodels.stats.multitest.multipletests(method="holm")``, which the tests
    compare against; it calls ``gc.collect()`` on every call, half a second each in the
    report's process). NaN entries (no test) stay NaN and do not count in the family."""
    p_values = np.asarray(p_values, dtype=float)
    corrected = np.full_like(p_values, np.nan)
    tested = np.flatnonzero(np.isfinite(p_values))
    order = tested[np.argsort(p_values[tested], kind="stable")]
    scaled = p_values[order] * np.arange(len(order), 0, -1)
    corrected[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return corrected


def per_image(records: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Values of ``metric`` as a unit x method table (a unit stored twice: its mean);
    non-finite values are NaN and methods without any finite value are left out."""
    part = records[records["metric"] == metric]
    values = part["value"].astype(float)
    table = (part.assign(value=values.where(np.isfinite(values)))
             .groupby([*UNIT, "method"])["value"].mean().unstack("method"))
    return table.dropna(axis=1, how="all")


def _wilcoxon(differences: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    if len(differences) == 0:
        return math.nan
    if not differences.any():  # identical on every image: no evidence either way
        return 1.0
    return float(wilcoxon(differences).pvalue)


def rank_balance(differences: np.ndarray) -> float:
    """The signed-rank statistic's side: the sum of the ranks of ``|d|`` (zeros dropped,
    ties averaged) over the positive differences minus that over the negative ones,
    scaled to [-1, 1] (positive: the signed-rank test's evidence says "higher")."""
    from scipy.stats import rankdata

    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        return 0.0
    ranks = rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def paired_differences(records: pd.DataFrame, metric: str, reference: str = "uni"):
    """One row per method other than ``reference``: ``n`` paired images, the ``mean``
    paired difference (method minus reference) with its bootstrap interval ``low``,
    ``high``, the two-sided Wilcoxon signed-rank ``p`` (scipy) with the side of its
    statistic (``ranks``: :func:`rank_balance`) and ``p_holm``, Holm-corrected across the
    methods compared. Empty when the reference has no values."""
    table = per_image(records, metric)
    columns = ["method", "n", "mean", "low", "high", "p", "ranks", "p_holm"]
    if reference not in table:
        return pd.DataFrame(columns=columns)
    rows = []
    for method in sorted(m for m in table if m != reference):
        both = table[[method, reference]].dropna()
        differences = (both[method] - both[reference]).to_numpy()
        rows.append({
            "method": method, "n": len(differences),
            "mean": float(differences.mean()) if len(differences) else math.nan,
            **dict(zip(("low", "high"), bootstrap_interval(differences))),
            "p": _wilcoxon(differences),
            "ranks": rank_balance(differences),
        })
    frame = pd.DataFrame(rows, columns=columns[:-1])
    return frame.assign(p_holm=holm(frame["p"]))


@cache
def min_pairs(competitors: int, alpha: float = ALPHA) -> int:
    """The fewest paired images at which a claim against ``competitors`` methods can be
    decided: the smallest attainable Wilcoxon p (every difference on one side, distinct
    magnitudes; computed with the test the verdicts use) times Holm's factor for the
    smallest of ``competitors`` p-values is below ``alpha``; at least ``MIN_PAIRS``."""
    competitors = max(int(competitors), 1)
    n = MIN_PAIRS
    while competitors * _wilcoxon(np.arange(1.0, n + 1)) >= alpha:
        n += 1
    return n


def _significant(differences: pd.DataFrame, lower: bool, winner: str,
                 competitors: int | None = None) -> pd.Series:
    """Rows (method minus reference) where ``winner`` ("method" or "reference") is
    significantly better: n >= :func:`min_pairs` of the ``competitors`` (default: the rows)
    compared, Holm p < ALPHA, and the signed ranks and the whole interval on the winner's
    side of 0."""
    above = (differences["low"] > 0) & (differences["ranks"] > 0)
    below = (differences["high"] < 0) & (differences["ranks"] < 0)
    method_better = below if lower else above
    side = method_better if winner == "method" else (above if lower else below)
    enough = differences["n"] >= min_pairs(competitors or len(differences))
    return enough & (differences["p_holm"] < ALPHA) & side


VERDICTS = ("holds", "fails", "inconclusive")


def verdict(differences: pd.DataFrame, metric: str, competitors: int | None = None) -> str:
    """``holds``, ``fails`` or ``inconclusive`` for "the reference is better than every
    other method on ``metric``" (its direction from :func:`uni.catalog.direction`), from
    :func:`paired_differences` (see ``VERDICT_RULE``):
    holds when every method compared is significantly worse than the reference (n >=
    :func:`min_pairs` of the methods compared, Holm p < ALPHA, signed ranks and interval
    excluding 0 on the reference's side); fails when at least one is significantly
    better; inconclusive otherwise (also when there is no method to compare, or any
    comparison has fewer images than that). ``competitors``: the size of the family the
    Holm p were corrected over, when ``differences`` holds only some of its rows
    (default: its rows)."""
    if differences.empty:
        return "inconclusive"
    lower = lower_is_better(metric)
    if _significant(differences, lower, "method", competitors).any():
        return "fails"
    if _significant(differences, lower, "reference", competitors).all():
        return "holds"
    return "inconclusive"


def deciding_comparison(differences: pd.DataFrame, metric: str) -> tuple[str, float]:
    """The comparison that decides :func:`verdict` and its Holm p: on ``fails``, the
    method significantly better than the reference with the smallest Holm p; otherwise
    (``holds`` needs every comparison; ``inconclusive`` lacks one) the comparison with the
    largest Holm p. ``("-", nan)`` without comparisons."""
    tested = differences[differences["p_holm"].notna()]
    if tested.empty:
        return "-", math.nan
    better = tested[_significant(tested, lower_is_better(metric), "method",
                                 len(differences))]
    row = (better.loc[better["p_holm"].idxmin()] if verdict(differences, metric) == "fails"
           else tested.loc[tested["p_holm"].idxmax()])
    return str(row["method"]), float(row["p_holm"])


def verdict_rule() -> str:
    """The verdict rule in words (REPORT), with the minimum n for a few numbers of methods
    compared."""
    return _VERDICT_RULE.format(examples=", ".join(f"N({m}) = {min_pairs(m)}"
                                                   for m in (1, 4, 8, 16, 32)))


def subset_methods(records: pd.DataFrame) -> pd.Series:
    """Image counts of the methods recorded on fewer images than the most covered one (a
    method run on a stated subset: AGI on the first 50 of 300), by method. A test over
    the images complete for every method would shrink to that subset: the tests over all
    methods (Friedman's, the ranking across metrics) leave these out and say so."""
    counts = records.groupby("method")["image_id"].nunique()
    return counts[counts < counts.max()]


@dataclass(frozen=True)
class Friedman:
    """Friedman's test over methods on the images complete for all of them."""

    metric: str
    statistic: float
    p: float
    n: int
    mean_ranks: pd.Series  # method -> mean rank, 1 = best
    posthoc: pd.DataFrame  # method x method Nemenyi p-values
    left_out: pd.Series  # methods run on a subset of the images -> their image count


def friedman_posthoc(records: pd.DataFrame, metric: str) -> Friedman | None:
    """Friedman's (1937) test over the methods with values of ``metric`` (scipy), on the
    images where every one of them is finite, with mean ranks (1 = best; direction from
    :func:`uni.catalog.lower_is_better`) and the Nemenyi post-hoc p-values (scikit-posthocs,
    ``posthoc_nemenyi_friedman``; Demšar 2006); the methods run on a subset of the images
    are left out (:func:`subset_methods`). ``None`` with fewer than 3 methods or 2
    complete images (the test is undefined)."""
    import scikit_posthocs
    from scipy.stats import friedmanchisquare

    records = records[records["metric"] == metric]
    left_out = subset_methods(records)
    table = per_image(records[~records["method"].isin(left_out.index)], metric).dropna()
    if table.shape[1] < 3 or len(table) < 2:
        return None
    statistic, p = friedmanchisquare(*(table[m].to_numpy() for m in table))
    ranks = table.rank(axis=1, ascending=lower_is_better(metric)).mean().sort_values()
    posthoc = scikit_posthocs.posthoc_nemenyi_friedman(table.to_numpy())
    posthoc.index = posthoc.columns = table.columns
    return Friedman(metric, float(statistic), float(p), len(table), ranks, posthoc, left_out)


def cd_figure(result: Friedman, path: Path) -> Path:
    """The critical-difference diagram of ``result`` as a PNG (scikit-posthocs
    ``critical_difference_diagram``: mean ranks on the axis; methods the Nemenyi test
    cannot tell apart at ALPHA joined by a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scikit_posthocs

    fig, ax = plt.subplots(figsize=(6, 2.2))
    scikit_posthocs.critical_difference_diagram(result.mean_ranks, result.posthoc, ax=ax,
                                                alpha=ALPHA)
    ax.set_title(f"{result.metric}: mean rank (1 = best), n = {result.n}, Friedman "
                 f"p = {result.p:.2g}", fontsize=9)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path

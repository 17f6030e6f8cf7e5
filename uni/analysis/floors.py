"""Trivial maps as floors in the report (:mod:`uni.methods.trivial`): they are kept out of
the claims' comparisons and statistical tests (a claim is about attribution methods), and
the Claims table says, per claim, which trivial map beats UNI or the strongest
competitor: a metric under which a map that never reads the model beats the methods is
measuring something else.

"Beats" is weaker than a claim's rule, on purpose: the trivial map's paired difference to
the method over the same images (:func:`uni.analysis.stats.paired_differences`) is on the
better side of 0 with its whole 95 % bootstrap interval, with no test and no correction
across the maps: a floor is a warning about the metric, not a verdict. The cell shows
that difference as trivial map minus method (so + is the map's lead on a higher-is-better
metric), not UNI minus the strongest competitor as the effect column does.
"""

from __future__ import annotations

import pandas as pd

from uni.analysis.stats import paired_differences
from uni.catalog import floor_methods, lower_is_better

COLUMN = "trivial maps beating UNI / the strongest competitor"


def without_floors(records: pd.DataFrame) -> pd.DataFrame:
    """The records of the attribution methods (no trivial map)."""
    return records[~records["method"].isin(floor_methods())]


def strongest_competitor(records: pd.DataFrame, metric: str, reference: str = "uni"
                         ) -> str | None:
    """The method other than ``reference`` and the trivial maps whose mean paired
    difference to ``reference`` is best for it (the Claims' effect column's method)."""
    differences = paired_differences(without_floors(records), metric, reference)
    compared = differences[differences["n"] > 0]
    if compared.empty:
        return None
    best = compared["mean"].idxmin() if lower_is_better(metric) else compared["mean"].idxmax()
    return str(compared.loc[best, "method"])


def floors_beating(records: pd.DataFrame, metric: str, method: str) -> list[str]:
    """The trivial maps whose paired difference to ``method`` on ``metric`` is better for
    them with the whole interval, each as ``name (+diff [low, high])``."""
    floors = sorted(set(records["method"]) & floor_methods())
    if not floors:
        return []
    part = records[records["method"].isin([*floors, method])]
    differences = paired_differences(part, metric, method)
    lower = lower_is_better(metric)
    better = differences["high"] < 0 if lower else differences["low"] > 0
    return [f"{row.method} ({row.mean:+.3f} [{row.low:+.3f}, {row.high:+.3f}])"
            for row in differences[better & (differences["n"] > 1)].itertuples()]


def floor_verdict(records: pd.DataFrame, metric: str, reference: str = "uni") -> str:
    """The Claims table's cell: which trivial maps beat ``reference`` and which beat the
    strongest competitor (``-`` without trivial maps in the records)."""
    if not set(records["method"]) & floor_methods():
        return "-"
    strongest = strongest_competitor(records, metric, reference)
    parts = []
    for label, method in (("UNI", reference), (strongest, strongest)):
        if method is None:
            continue
        beating = floors_beating(records, metric, method)
        parts.append(f"{label}: {', '.join(beating) if beating else 'none'}")
    return "; ".join(parts)

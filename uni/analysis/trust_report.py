"""REPORT.md sections on whether the metrics' verdicts can be trusted: ROAD with its
MoRF/LeRF consistency, the randomisation sanity checks with a verdict per method, and the
ranking across metrics (:mod:`uni.analysis.ranking`). Each takes records and returns markdown
lines; :mod:`uni.analysis.report` calls them (``table_block`` and ``per_model`` are its helpers:
a table written under ``out/tables`` and a block per model)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from uni.analysis import stats
from uni.analysis.figures import line_figure, mean_curves
from uni.analysis.floors import without_floors
from uni.analysis.ranking import ranking_lines
from uni.analysis.tables import load_records, merged, of_metric, summarise
from uni.catalog import method_order
from uni.records import has_records, write_csv

SANITY = "sanity"  # the experiment's run directory under a results directory
# a method passes the sanity check when the upper end of the interval of the Spearman
# correlation of |A| to the original map at full cascading randomisation is below this
SANITY_THRESHOLD = 0.5
SANITY_SCORE = "spearman_abs"


def road_consistency(records: pd.DataFrame) -> tuple[float, int]:
    """Spearman, over the attribution methods (trivial maps left out), between their
    order by mean MoRF (lower is better) and by mean LeRF (higher is better): 1 when the
    two removal orders rank the methods alike (the ROAD paper's consistency), and the
    number of methods."""
    means = (without_floors(records)[lambda f: f["metric"].isin(["road_morf", "road_lerf"])]
             .groupby(["method", "metric"])["value"].mean().unstack("metric").dropna())
    if len(means) < 3 or not {"road_morf", "road_lerf"} <= set(means):
        return float("nan"), len(means)
    rho = spearmanr(means["road_morf"], -means["road_lerf"]).statistic
    return float(rho), len(means)


def road_section(records: pd.DataFrame, out: Path, table_block: Callable,
                 per_model: Callable) -> list[str]:
    """The ROAD section's lines (``[]`` without ROAD records)."""
    road = of_metric(records, "road")
    if road.empty:
        return []

    def block(r: pd.DataFrame, suffix: str) -> list[str]:
        rho, methods = road_consistency(r)
        return [*table_block(summarise(r), out, f"road{suffix}"), "",
                f"MoRF-LeRF order agreement: Spearman {rho:.2f} between the order of the "
                f"{methods} methods other than the floors (UNI's variants and controls "
                "included) by mean MoRF and by mean LeRF (1: both removal orders rank them "
                "alike; the table's road_consistency is per image)."]

    return ["## ROAD (RemOve And Debias)", "",
            "Rong et al. 2022: F_c after removing the most (MoRF, lower is better) or least "
            "(LeRF, higher is better) attributed pixels, filled by noisy linear imputation; "
            "mean over removing 10 %, 20 %, ..., 90 %. road_combined = (LeRF - MoRF) / 2; "
            "road_consistency: share of percentages where LeRF keeps more of F_c than MoRF "
            "(docs/metrics.md).", "", *per_model(road, block), ""]


def ranking_section(records: pd.DataFrame, out: Path, per_model: Callable) -> list[str]:
    """The section "Ranking across metrics" (``[]`` without records)."""
    if records.empty:
        return []
    return ["## Ranking across metrics", "",
            "Per model and image each method is ranked under each metric (1 = best, the "
            "metric's direction from the registry); rank per metric: mean over images; "
            "mean rank: over metrics, then images, with a 95 % bootstrap interval over "
            "images. Kendall's W: the metrics' agreement on the methods' order. This is "
            "LATEC's aggregation step (Klein et al. 2024: ranks per metric averaged across "
            "metrics) with an interval added; the per-metric Friedman tests and "
            "critical-difference diagrams (scikit-posthocs) are in the sections above.", "",
            *per_model(records, lambda r, suffix: ranking_lines(r, out, suffix)), ""]


def sanity_runs(results_dir: Path) -> list[Path]:
    """``sanity`` and ``sanity-*`` run directories with records."""
    dirs = [results_dir / SANITY, *sorted(results_dir.glob(f"{SANITY}-*"))]
    return [d for d in dirs if has_records(d)]


def _steps(records: pd.DataFrame, mode: str, quantity: str) -> pd.DataFrame:
    part = records[records["metric"].str.fullmatch(rf"sanity_{mode}_{quantity}@\d+")].copy()
    return part.assign(step=part["metric"].str.rsplit("@", n=1).str[1].astype(int))


def sanity_verdicts(records: pd.DataFrame) -> pd.DataFrame:
    """Per method: Spearman of |A| at full cascading randomisation and under a random
    class (mean [interval]) and the verdict (module constants)."""
    cascading = _steps(records, "cascading", SANITY_SCORE)
    if cascading.empty:
        return pd.DataFrame()
    full = cascading[cascading["step"] == cascading["step"].max()]
    logit = records[records["metric"] == f"sanity_random_logit_{SANITY_SCORE}"]
    rows = {}
    for method in method_order(full["method"].unique()):
        values = full.loc[full["method"] == method, "value"].to_numpy(float)
        low, high = stats.bootstrap_interval(values)
        verdict = ("passes" if high < SANITY_THRESHOLD else
                   "fails" if low >= SANITY_THRESHOLD else "inconclusive")
        random = logit.loc[logit["method"] == method, "value"].to_numpy(float)
        r_low, r_high = stats.bootstrap_interval(random)
        rows[method] = {
            "full randomisation": f"{np.nanmean(values):.2f} [{low:.2f}, {high:.2f}]",
            "random logit": (f"{np.nanmean(random):.2f} [{r_low:.2f}, {r_high:.2f}]"
                             if len(random) else "-"),
            "n": int(np.isfinite(values).sum()), "verdict": verdict,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def sanity_curves(records: pd.DataFrame, mode: str, path: Path) -> Path:
    """Mean similarity (Spearman of |A|) against the randomisation step, per method."""
    curves, bands = mean_curves(_steps(records, mode, SANITY_SCORE), "step")
    what = ("block groups randomised, from the logits" if mode == "cascading"
            else "block group randomised alone (1: the logits layer)")
    return line_figure(curves, path, what, "Spearman of |A| to the original",
                       f"Sanity check, {mode} randomisation", bands=bands)


def sanity_section(results_dir: Path, out: Path) -> list[str]:
    """The section "Sanity checks" from the ``sanity`` runs under ``results_dir``."""
    runs = sanity_runs(results_dir)
    if not runs:
        return []
    records = merged([load_records([d]) for d in runs])
    lines = ["## Sanity checks", "",
             "Adebayo et al. 2018: each method re-explains models whose block groups are "
             "randomised, cascading from the logits to the stem and each group alone, and "
             "(Sixt et al. 2020) the original model for a random other class; similarity "
             f"to the original map (Spearman of |A|; SSIM, Spearman of A and top-k "
             f"intersection in `{SANITY}/records.parquet`). A method **passes** when the "
             f"95 % interval of its Spearman at full cascading randomisation lies below "
             f"{SANITY_THRESHOLD}, **fails** when it lies at or above, else inconclusive. "
             "The trivial maps never read the model: they fail by construction.", ""]
    for model in sorted(records["model"].dropna().unique()):
        part = records[records["model"] == model]
        suffix = "_" + re.sub(r"[^\w.-]", "_", str(model))
        table = sanity_verdicts(part)
        write_csv(table, out / "tables" / f"sanity{suffix}.csv", index=True)
        lines += [f"Model `{model}` ({part['image_id'].nunique()} images):", "",
                  table.to_markdown(), ""]
        for mode in ("cascading", "independent"):
            if not _steps(part, mode, SANITY_SCORE).empty:
                figure = sanity_curves(part, mode, out / "figures" / f"sanity_{mode}{suffix}.png")
                lines += [f"![{mode}]({figure.relative_to(out)})", ""]
    # the maps per randomisation step, where `python -m uni.analysis.sanity_figure` drew them
    for figure in sorted((out / "figures").glob("sanity_maps_*.png")):
        lines += [f"![maps per randomisation step]({figure.relative_to(out)})", ""]
    return lines


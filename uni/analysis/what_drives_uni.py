"""REPORT.md's "What drives UNI": is it the unlearning? Computed like the Claims
(:mod:`uni.analysis.claims`, :mod:`uni.analysis.stats`), on the same records.

For every metric of every experiment: paired UNI - control per image (UNI minus each of
the controls at UNI's distance, the gradient maps and ``uni_paper``), with its bootstrap
interval, the Wilcoxon p Holm-corrected across the comparisons of that metric, a
verdict ("UNI better": holds / fails / inconclusive, the Claims' rule for one comparison)
and one sentence generated from the numbers. Then the path-length view: each metric
against ``||x - x'||_2`` per image, one colour per method (methods that record the
distance: straight lines from a baseline).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uni.analysis.claims import ATTACK_SCORE, diagnostic_records
from uni.analysis.figures import pyplot, save_figure
from uni.analysis.stats import min_pairs, paired_differences, verdict
from uni.catalog import lower_is_better, method_order, metric_order
from uni.records import write_csv

REFERENCE = "uni"
DISTANCE = "dist_l2"  # the per-image diagnostic column of ||x - x'||_2
# what each comparison isolates: "<what UNI - control measures>"
COMPARISONS = {
    "adv_baseline": "unlearning adds {effect} over an adversarial baseline at the same distance",
    "random_ball": "UNI's direction adds {effect} over a random point at the same distance",
    "ig_black_near": "UNI's baseline adds {effect} over the black baseline moved to the same "
                     "distance",
    "ig_blur_near": "UNI's baseline adds {effect} over the blurred baseline moved to the same "
                    "distance",
    "gradient": "UNI's path adds {effect} over the signed input gradient",
    "abs_gradient": "UNI's path adds {effect} over the gradient's magnitude",
    "gradient_x_input": "UNI's path adds {effect} over gradient x input",
    "uni_paper": "the tuned UNI adds {effect} over the paper's Algorithm 1 (uni_paper)",
}
VERDICT_WORDS = {"holds": "UNI better", "fails": "UNI worse", "inconclusive": "inconclusive"}
COLUMNS = ["metric", "model", "control", "n", "UNI - control", "Holm p", "verdict", "reading"]


def compared_metrics(records: pd.DataFrame) -> list[str]:
    """The scores of an experiment's records (not noise floors, skips or diagnostics)."""
    names = [m for m in records["metric"].dropna().unique()
             if "noise_floor" not in m and "skipped" not in m
             and (not m.startswith("robustness_") or ATTACK_SCORE.match(m))]
    return metric_order(names)


def what_drives_rows(records: pd.DataFrame, metrics) -> pd.DataFrame:
    """One row per metric, model and control present in ``records`` with UNI (columns
    :data:`COLUMNS`); Holm's correction runs over the controls of one metric and model."""
    kept = records[records["method"].isin([REFERENCE, *COMPARISONS])]
    rows = []
    for metric in metrics:
        for model in sorted(kept["model"].dropna().unique()):
            differences = paired_differences(kept[kept["model"] == model], metric, REFERENCE)
            for i, row in enumerate(differences.itertuples()):
                judged = verdict(differences.iloc[[i]], metric, len(differences))
                if row.n == 0:
                    continue
                # + 0.0: an exact tie prints as +0, not -0
                effect = (f"{-row.mean + 0.0:+.3f} [{-row.high + 0.0:+.3f}, "
                          f"{-row.low + 0.0:+.3f}]")
                direction = "lower is better" if lower_is_better(metric) else "higher is better"
                text = COMPARISONS[row.method].format(effect=f"{-row.mean + 0.0:+.3g} {metric}")
                rows.append({
                    "metric": metric, "model": model, "control": row.method, "n": int(row.n),
                    "UNI - control": effect,
                    "Holm p": "-" if pd.isna(row.p_holm) else f"{row.p_holm:.2g}",
                    "verdict": VERDICT_WORDS[judged],
                    "reading": f"{text[0].upper()}{text[1:]} ({direction}; n = {row.n}): "
                               f"{VERDICT_WORDS[judged]}.",
                })
    return pd.DataFrame(rows, columns=COLUMNS)


def distance_figure(records: pd.DataFrame, metrics, path: Path) -> Path | None:
    """Each metric (a panel) against ``||x - x'||_2`` per image and method; ``None`` when
    no method records the distance."""
    if DISTANCE not in records:
        return None
    per_image = (records[records["metric"].isin(metrics)]
                 .dropna(subset=[DISTANCE, "value"])
                 .groupby(["model", "image_id", "method", "metric"])[[DISTANCE, "value"]].first()
                 .reset_index())
    shown = [m for m in metrics if m in set(per_image["metric"])]
    if not shown:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
    colours = plt.get_cmap("tab20")
    methods = method_order(per_image["method"].unique())
    for ax, metric in zip(axes[0], shown):
        part = per_image[per_image["metric"] == metric]
        for k, method in enumerate(methods):
            points = part[part["method"] == method]
            if points.empty:
                continue
            ax.scatter(points[DISTANCE], points["value"], s=6, alpha=0.4, color=colours(k % 20))
            ax.scatter([points[DISTANCE].median()], [points["value"].mean()], s=60,
                       marker="D", edgecolor="black", color=colours(k % 20), label=method)
        ax.set_xscale("log")
        ax.set_xlabel("||x - x'||_2 (pixel units)")
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("value per image (diamond: median distance, mean value)")
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def base_image_units(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with one value per independent image: the corrupted images of one base
    image (ImageNet-C: ``base_image_id``) averaged over their corruptions and severities,
    as the ImageNet-C claims do; other records as they are."""
    if "base_image_id" not in records or records["base_image_id"].isna().all():
        return records
    # rows without the column (a diagnostic's) find their base image through their id
    bases = records.dropna(subset=["base_image_id"]).drop_duplicates("image_id")
    base_of = bases.set_index("image_id")["base_image_id"]
    values = records.assign(value=pd.to_numeric(records["value"], errors="coerce"),
                            image_id=records["image_id"].map(base_of)
                            .fillna(records["image_id"]))
    return values.groupby(["model", "image_id", "method", "metric"])["value"].mean().reset_index()


def what_drives_uni_section(loaded: dict, out: Path) -> list[str]:
    """The REPORT.md section (markdown lines) from the experiments' merged records
    (``loaded``: experiment -> (records, runs), as :func:`uni.analysis.report.build_report` holds
    them); empty when no experiment has UNI and a control."""
    from uni.analysis.tables import with_derived_metrics

    blocks, tables = [], []
    for experiment, (records, _) in loaded.items():
        methods = set(records["method"].unique())
        if REFERENCE not in methods or not methods & set(COMPARISONS):
            continue
        records = with_derived_metrics(records)
        monotonicity = diagnostic_records(records, "monotonicity")
        metrics = compared_metrics(records)
        rows = what_drives_rows(base_image_units(pd.concat([records, monotonicity])),
                                metrics + (["monotonicity"] if len(monotonicity) else []))
        if rows.empty:
            continue
        tables.append(rows.assign(experiment=experiment))
        blocks += [f"### {experiment}", "",
                   rows.drop(columns="reading").to_markdown(index=False), "",
                   *[f"- {text}" for text in rows["reading"]], ""]
        figure = distance_figure(records, metrics, out / "figures" /
                                 f"metric_vs_distance_{experiment}.png")
        if figure is not None:
            blocks += [f"![metrics against ||x - x'||]({figure.relative_to(out)})", ""]
    if not blocks:
        return []
    table = pd.concat(tables, ignore_index=True)
    write_csv(table, out / "tables" / "what_drives_uni.csv")
    return [
        "## What drives UNI", "",
        "Is it the unlearning? UNI minus each control on the same images (mean paired "
        "difference, oriented so that + means UNI scores higher; [95% bootstrap "
        "interval]), Holm-corrected Wilcoxon p over the controls of each metric, and the "
        "Claims' rule for each comparison: *UNI better* when n >= N(m) for the m controls "
        f"of the metric (N(8) = {min_pairs(8)}), Holm p < 0.05, and the signed ranks and the "
        "interval on UNI's side of 0; *UNI worse* on the other side; else inconclusive. "
        "`completeness` is the relative gap |sum A - (F_c(x) - "
        "F_c(x'))| / |F_c(x) - F_c(x')| (lower is better); `monotonicity` the fraction of "
        "the path's intervals where F_c does not decrease. Controls: `adv_baseline` (UNI's "
        "search without unlearning), "
        "`random_ball`, `ig_black_near`, `ig_blur_near` (each at UNI's `||x - x'||` per "
        "image), the gradient maps (the zero-distance limits) and `uni_paper` (the paper's "
        "Algorithm 1). All rows: `tables/what_drives_uni.csv`. Figures: each metric per "
        "image against its baseline's distance.", "",
        *blocks,
    ]


__all__ = ["COMPARISONS", "compared_metrics", "distance_figure", "what_drives_rows",
           "what_drives_uni_section"]


"""UNI's ablation (``experiment=uni_ablation``, ``make ablation``): one run per UNI setting
under ``<results>/uni_ablation/``; this module labels each run's records with the setting
(read from the run's ``.hydra/config.yaml``) and writes the table
``tables/uni_ablation.csv`` and one figure per metric (metric against eps, one line per
norm, the other variants as points at their eps; 95% bootstrap intervals).

L2 radii are drawn at their matched L-inf radius, ``eps_inf = 2 eps_2 / sqrt(d)``
(``d = 3 H W``), the pairing the ``make ablation`` sweep uses.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from uni.records import has_records

EXPERIMENT = "uni_ablation"
SETTING = ["norm", "eps", "eps_255", "variant", "pgd_steps", "search"]
# per-image diagnostics (columns of every row) summarised beside the metrics
DIAGNOSTICS = ("kl", "p_c_unlearned", "p_c_baseline", "boundary_fraction", "best_iteration",
               "completeness_gap", "monotonicity")
# the centre of the sweep: every other axis is varied one at a time around it
CENTRE = {"variant": "normalised", "pgd_steps": 20, "search": "adam-constant"}


def variant(options: dict) -> str:
    """The unlearning variant of UNI options: ``threshold`` (until ``p_c`` falls below
    ``unlearn_until``), ``normalised`` (``eta g / ||g||``) or ``fixed`` (``eta g``)."""
    if options.get("unlearn_until") is not None:
        return "threshold"
    return "normalised" if options.get("unlearn_step") == "normalised" else "fixed"


def setting(options: dict, input_size=(3, 224, 224)) -> dict:
    """The ablation's columns for one run's UNI options."""
    eps, norm = float(options["eps"]), options["norm"]
    dimension = math.prod(input_size)
    eps_linf = eps if norm == "linf" else 2 * eps / math.sqrt(dimension)
    return {
        "norm": norm, "eps": eps, "eps_255": round(eps_linf * 255, 2),
        "variant": variant(options), "pgd_steps": int(options["pgd_steps"]),
        "search": f"{options.get('pgd_update', 'sign')}-{options.get('pgd_schedule', 'constant')}",
    }


def ablation_runs(results_dir: str | Path) -> list[Path]:
    root = Path(results_dir) / EXPERIMENT
    return sorted(p for p in root.glob("*") if p.is_dir() and has_records(p))


def ablation_records(results_dir: str | Path) -> pd.DataFrame:
    """Every ablation run's records (metrics and per-image diagnostics as rows), with the
    setting's columns."""
    from uni.tables import load_records, with_derived_metrics

    frames = []
    for run_dir in ablation_runs(results_dir):
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        records = with_derived_metrics(load_records([run_dir]))
        # one row per image carries the diagnostics (every metric row repeats them)
        first = records.drop_duplicates(["image_id", "method"])
        diagnostics = [
            first[["image_id", "method", "model"]].assign(metric=name, value=first[name])
            for name in DIAGNOSTICS if name in first
        ]
        frame = pd.concat([records[["image_id", "method", "model", "metric", "value"]],
                           *diagnostics], ignore_index=True)
        frames.append(frame.assign(**setting(config["method"]["uni"]), run=run_dir.name))
    if not frames:
        return pd.DataFrame(columns=[*SETTING, "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def ablation_table(records: pd.DataFrame) -> pd.DataFrame:
    """``eps, norm, variant, pgd_steps, search, metric, mean, ci_low, ci_high, n`` per
    setting and metric (a run's skipped images are not counted)."""
    from uni.tables import summarise

    summary = summarise(records, rows=SETTING, columns="metric")
    summary = summary.rename(columns={"low": "ci_low", "high": "ci_high"})
    return summary.sort_values(["metric", "norm", "variant", "search", "pgd_steps", "eps_255"],
                               ignore_index=True)


def ablation_figure(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """``metric`` against eps (matched L-inf radius, /255, log scale): a line per norm at
    the sweep's centre, a point per other variant, search and step count."""
    from uni.figures import pyplot, save_figure

    plt = pyplot()
    rows = table[table["metric"] == metric]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    centre = (rows["variant"] == CENTRE["variant"]) & (rows["search"] == CENTRE["search"]) \
        & (rows["pgd_steps"] == CENTRE["pgd_steps"])
    for norm, line in rows[centre].groupby("norm"):
        line = line.sort_values("eps_255")
        (drawn,) = ax.plot(line["eps_255"], line["mean"], marker="o", ms=3, label=norm)
        ax.fill_between(line["eps_255"], line["ci_low"], line["ci_high"],
                        color=drawn.get_color(), alpha=0.15)
    for _, point in rows[~centre].iterrows():
        label = (f"{point['norm']} {point['variant']}, {point['search']}, "
                 f"T={point['pgd_steps']}")
        ax.errorbar(point["eps_255"], point["mean"], fmt="s", ms=4, capsize=2, label=label,
                    yerr=[[point["mean"] - point["ci_low"]], [point["ci_high"] - point["mean"]]])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("eps (L-inf, /255; L2 at its matched radius)")
    ax.set_ylabel(metric)
    ax.set_title(f"UNI ablation: {metric} (n per point in the table)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


FIGURE_METRICS = ("mufidelity", "insertion-deletion", "robustness_random_intersection",
                  "noise_floor_intersection", "noise_floor_spearman", "stability_l1@4", "kl",
                  "p_c_baseline")


def write_ablation(results_dir: str | Path, out: str | Path | None = None) -> list[str]:
    """The table (CSV and Markdown) and figures under ``out`` (default: ``results_dir``);
    returns REPORT lines (empty when no ablation run has records)."""
    out = Path(out or results_dir)
    records = ablation_records(results_dir)
    if not len(records):
        return []
    table = ablation_table(records)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "tables" / "uni_ablation.csv", index=False)
    lines = [
        "One UNI setting per run on the development split (`make ablation`; table "
        "`tables/uni_ablation.csv`, columns eps, norm, variant, pgd_steps, search, metric, "
        f"mean, ci_low, ci_high, n). Centre: {CENTRE}; each other axis varied around it.", "",
    ]
    for metric in FIGURE_METRICS:
        if metric in set(table["metric"]):
            name = "uni_ablation_" + metric.replace("@", "_at_").replace("-", "_minus_")
            figure = ablation_figure(table, metric, out / "figures" / f"{name}.png")
            lines.append(f"![{metric}]({figure.relative_to(out)})")
    wide = table[table["metric"].isin(FIGURE_METRICS)].pivot_table(
        index=["norm", "eps_255", "variant", "search", "pgd_steps"], columns="metric",
        values="mean")
    n = table.groupby(["norm", "eps_255", "variant", "search", "pgd_steps"])["n"].min()
    wide = wide.assign(n=n).round(3).reset_index().to_markdown(index=False)
    (out / "tables" / "uni_ablation.md").write_text(wide + "\n")
    return [*lines, "", "Means per setting (n: the fewest images of any metric in the row):",
            "", wide, ""]

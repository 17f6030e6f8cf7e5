"""REPORT.md: tables, figures and the paired statistics of the experiment runs under a
results directory (DESIGN §4), assembled section by section (``uni report RESULTS_DIR``,
:mod:`uni.commands`). Tables come from :mod:`uni.tables`, figures from
:mod:`uni.figures`, the claims and paired statistics from :mod:`uni.claims`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from uni import stats
from uni.ablation import write_ablation
from uni.claims import (
    ATTACK_SCORE,
    claims_section,
    diagnostic_records,
    imagenet_c_families,
    paired_block,
)
from uni.errors import ConfigError
from uni.figure_data import FIGURES_FILE
from uni.figures import attribution_grid, line_figure
from uni.metrics import metric_order
from uni.protocol_sensitivity import NAME as SENSITIVITY
from uni.protocol_sensitivity import verdict_tallies, write_protocol_sensitivity
from uni.records import has_records, write_csv, write_text
from uni.tables import (
    load_records,
    merged,
    of_metric,
    one_config_per_cell,
    pivot,
    run_overrides,
    summarise,
    with_derived_metrics,
    write_table,
)

EXPERIMENTS = ("faithfulness", "robustness", "stability", "imagenet_c")


def stability_curves(records: pd.DataFrame, quantity: str = "l1"):
    """Mean (and bootstrap band) of ``stability_<quantity>@B`` against B, per method."""
    part = records[records["metric"].str.fullmatch(rf"stability_{quantity}@\d+")].copy()
    part["budget"] = part["metric"].str.split("@").str[1].astype(int)
    curves, bands = {}, {}
    for method, group in part.groupby("method"):
        points = [
            (budget, g["value"].mean(), *stats.bootstrap_interval(g["value"].to_numpy(float)))
            for budget, g in sorted(group.groupby("budget"))
        ]
        budgets, means, lows, highs = map(np.array, zip(*points))
        curves[method], bands[method] = (budgets, means), (lows, highs)
    return curves, bands


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"## {title}", "", *lines, ""]


def _table_block(summary: pd.DataFrame, out: Path, name: str, rows="method", columns="metric",
                 metric: str | None = None, labels: dict[str, str] | None = None):
    """A table written under ``out/tables`` and shown in the report (``metric`` and
    ``labels`` as :func:`uni.tables.pivot` takes them)."""
    if summary.empty:
        return ["(no records)"]
    options = {"rows": rows, "columns": columns, "metric": metric, "labels": labels}
    write_table(summary, out / "tables" / name, ("md", "csv"), **options)
    table = pivot(summary, **options).to_markdown()
    return [table, "", f"CSV: `tables/{name}.csv`"]


def _run_facts(run_dir: Path, records: pd.DataFrame) -> str:
    overrides = run_overrides(run_dir)
    images = records["image_id"].nunique()
    skipped = records.loc[records["metric"] == "skipped", "image_id"].nunique()
    models = ", ".join(sorted(records["model"].dropna().unique()))
    splits = ", ".join(sorted(records["split"].dropna().astype(str).unique()))
    return (
        f"Run `{run_dir.name}`: model {models}; data split {splits}; {images} images "
        f"({skipped} skipped); overrides `{overrides or '-'}`; config `{run_dir.name}/.hydra/"
        f"config.yaml`. Cells: mean [95% bootstrap interval] (n images); best in bold."
    )


def experiment_runs(results_dir: Path) -> dict[str, list[Path]]:
    """The run directories with records under ``results_dir``, by experiment: the one
    named ``<experiment>`` first, then every ``<experiment>-<suffix>``, whatever the
    suffix (``make reproduce MODEL=efficientnet_lite1`` writes
    ``faithfulness-efficientnet_lite1``: the same experiment on another model)."""
    runs = {}
    for experiment in EXPERIMENTS:
        dirs = [results_dir / experiment, *sorted(results_dir.glob(f"{experiment}-*"))]
        dirs = [d for d in dirs if has_records(d)]
        if dirs:
            runs[experiment] = dirs
    return runs


def _per_model(records: pd.DataFrame, block) -> list[str]:
    """``block(records, name_suffix)`` once, or once per model (its own table, best per
    column within the model) when the records hold several models."""
    models = sorted(records["model"].dropna().unique())
    if len(models) <= 1:
        return block(records, "")
    lines = []
    for model in models:
        suffix = "_" + re.sub(r"[^\w.-]", "_", str(model))  # a file name: hf-hub:org/name
        lines += [f"Model `{model}`:", "", *block(records[records["model"] == model], suffix), ""]
    return lines


def build_report(results_dir: str | Path, title: str = "uni-bench report") -> Path:
    """Tables, figures and ``REPORT.md`` for the experiment runs under ``results_dir``
    (one subdirectory per experiment, as ``make reproduce`` writes them; see
    :func:`experiment_runs`)."""
    out = Path(results_dir)
    found = experiment_runs(out)
    studies = [out / "uni_ablation", out / SENSITIVITY]  # runs of their own layout
    if not found and not any(p.is_dir() and any(map(has_records, [p, *p.iterdir()]))
                             for p in studies):
        raise FileNotFoundError(f"no experiment runs ({', '.join(EXPERIMENTS)}) under {out}")
    # each experiment: its records (every run, a row stored twice counted once), its runs
    loaded = {}
    for experiment, run_dirs in found.items():
        runs = [(run_dir, load_records([run_dir])) for run_dir in run_dirs]
        loaded[experiment] = merged([r for _, r in runs]), runs
        one_config_per_cell(loaded[experiment][0], f"{out}: experiment {experiment}")
    # the protocol grid's tables first: its per-protocol verdicts join the Claims table
    sensitivity = out / SENSITIVITY
    grid_files = write_protocol_sensitivity(sensitivity, out) if has_records(sensitivity) else []
    grid = None
    if grid_files:
        grid_csv, grid_table, grid_figure, verdicts_csv = grid_files
        grid = verdict_tallies(pd.read_csv(verdicts_csv, dtype={"model": str}))
    lines = [f"# {title}", "", *claims_section(loaded, EXPERIMENTS, grid)]
    missing = [e for e in EXPERIMENTS if e not in found]
    if missing:
        lines += [f"Not run yet (no records): {', '.join(missing)}.", ""]

    def facts(experiment: str) -> tuple[pd.DataFrame, list[str]]:
        """The experiment's records and a line per run; a note where two runs hold the
        same model (its cells pool them)."""
        records, runs = loaded[experiment]
        lines, seen = [], {}
        for run_dir, run_records in runs:
            lines += [_run_facts(run_dir, run_records), ""]
            for model in run_records["model"].dropna().unique():
                if model in seen:
                    lines += [f"Note: runs `{seen[model]}` and `{run_dir.name}` both hold "
                              f"model {model}; its cells pool them.", ""]
                seen.setdefault(model, run_dir.name)
        return records, lines

    if "faithfulness" in found:
        records, run_lines = facts("faithfulness")
        records = with_derived_metrics(records)
        lines += _section("Faithfulness: MuFidelity (model x method)", [
            *run_lines,
            *_table_block(summarise(records[records["metric"] == "mufidelity"],
                                    rows=["method"], columns="model"),
                          out, "mufidelity", columns="model", metric="mufidelity"),
            "", *_per_model(records, lambda r, suffix: paired_block(
                r, ["mufidelity"], out, suffix)),
        ])
        scores = ["deletion", "insertion", "insertion-deletion"]
        lines += _section("Deletion / insertion", _per_model(records, lambda r, suffix: [
            *_table_block(summarise(r[r["metric"].isin(scores)]), out,
                          f"deletion_insertion{suffix}"),
            "", *paired_block(r, scores, out, suffix)]))
        monotonicity = diagnostic_records(records, "monotonicity")
        if len(monotonicity):
            lines += _section(
                "Path monotonicity (fraction of path steps where F_c does not decrease)",
                _per_model(monotonicity, lambda r, suffix: [
                    *_table_block(summarise(r), out, f"monotonicity{suffix}"),
                    "", *paired_block(r, ["monotonicity"], out, suffix)]))
        lines += _figure_section(found["faithfulness"][0], out)

    if "robustness" in found:
        records, run_lines = facts("robustness")

        def robustness_block(r: pd.DataFrame, suffix: str) -> list[str]:
            scores = metric_order(m for m in r["metric"].unique() if ATTACK_SCORE.match(m))
            floor = of_metric(r, "noise_floor")
            labels = {m: m.replace("_", " ") for m in floor["metric"].unique()}
            note = ["Noise floor: the same scores between two explanations of the "
                    "unperturbed image (independent draws or starts), a reference for the "
                    "attacks' scores.", ""] if len(floor) else []
            table = summarise(pd.concat([r[r["metric"].isin(scores)], floor]))
            return [*_table_block(table, out, f"robustness{suffix}", labels=labels), "", *note,
                    *paired_block(r, scores, out, suffix)]

        lines += _section("Robustness (Spearman and top-k intersection per attack)",
                          [*run_lines, *_per_model(records, robustness_block)])

    if "stability" in found:
        records, run_lines = facts("stability")

        def stability_block(r: pd.DataFrame, suffix: str) -> list[str]:
            curves, bands = stability_curves(r, "l1")
            figure = line_figure(
                curves, out / "figures" / f"stability_l1{suffix}.png", "Riemann steps B",
                "normalised L1 to the reference", "Riemann stability (lower is better)",
                logx=True, bands=bands,
            )
            part = r[r["metric"].str.fullmatch(r"stability_l1@\d+")].copy()
            part["B"] = part["metric"].str.split("@").str[1].astype(int)
            summary = summarise(part, rows="method", columns="B").sort_values("B")
            budgets = [f"stability_l1@{b}" for b in summary["B"].unique()]
            return [*_table_block(summary.assign(B=summary["B"].map("B={}".format)), out,
                                  f"stability_l1{suffix}", columns="B", metric=budgets[0]),
                    "", f"![stability]({figure.relative_to(out)})", "",
                    *paired_block(r, budgets, out, suffix)]

        lines += _section("Riemann stability (normalised L1 to the reference, method x B)",
                          [*run_lines, *_per_model(records, stability_block)])

    if "imagenet_c" in found:
        records, run_lines = facts("imagenet_c")

        def imagenet_c_block(r: pd.DataFrame, suffix: str) -> list[str]:
            part = r[r["metric"] == "mufidelity"]
            by_severity = summarise(part, rows=["method", "corruption"], columns="severity")
            name = f"imagenet_c_by_severity{suffix}.csv"
            write_csv(by_severity, out / "tables" / name)
            families, _ = imagenet_c_families(r)
            return [*_table_block(summarise(part, rows="method", columns="corruption"), out,
                                  f"imagenet_c_mufidelity{suffix}", columns="corruption",
                                  metric="mufidelity"),
                    "", f"Per severity: `tables/{name}`.", "",
                    "Per corruption family, paired on the base image (its mean over the "
                    "family's corruptions and severities):", "",
                    *paired_block(families, sorted(families["metric"].unique()), out, suffix)]

        lines += _section("ImageNet-C: MuFidelity (method x corruption, all severities)",
                          [*run_lines, *_per_model(records, imagenet_c_block)])

    ablation = write_ablation(out)
    if ablation:
        lines += _section("UNI ablation (development split)", ablation)
    if grid_files:
        lines += _section("Protocol sensitivity: each method's rank under each protocol", [
            f"The same attributions scored under every protocol of `{SENSITIVITY}/` "
            f"(`{grid_csv.relative_to(out)}`).", "", grid_table.read_text(), "",
            f"![ranks]({grid_figure.relative_to(out)})"])

    report = out / "REPORT.md"
    write_text(report, "\n".join(lines) + "\n")
    return report


FIGURE_NAMES = ("attribution_grid", "path_scores", "deletion_curves", "insertion_curves")


def _figure_section(run_dir: Path, out: Path) -> list[str]:
    """Figures from the attributions a run kept (``figures.images`` > 0)."""
    path = run_dir / FIGURES_FILE
    if not path.exists():  # a regenerable cache, not in git: keep the figures drawn before
        drawn = [name for name in FIGURE_NAMES if (out / "figures" / f"{name}.png").exists()]
        return _section("Figures (drawn earlier; their data is a cache that a rerun of the "
                        "experiment recomputes)",
                        [f"![{name}](figures/{name}.png)" for name in drawn]) if drawn else []
    import torch

    try:
        kept = torch.load(path, weights_only=True)
        methods = list(kept["attributions"])
    except Exception as err:  # never the loader's advice to unpickle anything
        raise ConfigError(f"{path}: unreadable figure data ({type(err).__name__}); delete it "
                          "and rerun the experiment to redraw the figures") from None
    uni_baseline = kept["baselines"].get("uni")
    grid = attribution_grid(
        kept["images"].numpy(), {m: kept["attributions"][m].numpy() for m in methods},
        None if uni_baseline is None else uni_baseline.numpy(), kept["image_ids"],
        out / "figures" / "attribution_grid.png",
    )
    lines = [f"![attribution grid]({grid.relative_to(out)})", ""]
    paths = {m: s.numpy() for m, s in kept["path_scores"].items()}
    if paths:
        curves = {m: (np.linspace(0, 1, s.shape[1]), s.mean(0)) for m, s in paths.items()}
        figure = line_figure(curves, out / "figures" / "path_scores.png", "alpha along the path",
                             "F_c (mean over images)", "F_c along each method's path")
        lines += [f"![F_c along the path]({figure.relative_to(out)})", ""]
    for kind in ("deletion", "insertion"):
        curves = {m: (np.linspace(0, 1, c.shape[1]), c.numpy().mean(0))
                  for m, c in kept.get(f"{kind}_curves", {}).items()}
        if curves:
            figure = line_figure(curves, out / "figures" / f"{kind}_curves.png",
                                 "fraction of pixels changed", "F_c (mean over images)",
                                 f"{kind.capitalize()} curves")
            lines += [f"![{kind} curves]({figure.relative_to(out)})", ""]
    return _section(f"Figures ({len(kept['image_ids'])} images)", lines)


def draw_run_figures(run_dir: Path, out: Path) -> list[Path]:
    """The figures of one run's kept attributions (as in the report), drawn into
    ``out/figures`` (for its wandb dashboard)."""
    _figure_section(run_dir, out)
    return sorted((out / "figures").glob("*.png"))

"""REPORT.md: tables, figures and the paired statistics of the experiment runs under a
results directory (docs/design.md §4), assembled section by section (``uni report RESULTS_DIR``,
:mod:`uni.commands`). Tables come from :mod:`uni.tables`, figures from
:mod:`uni.figures`, the claims and paired statistics from :mod:`uni.claims`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from uni import stats
from uni.ablation import write_ablation
from uni.baseline_ablation import write_baseline_ablation
from uni.catalog import method_order, metric_order
from uni.claims import (
    ATTACK_SCORE,
    attack_budgets,
    claims_section,
    diagnostic_records,
    imagenet_c_families,
    paired_block,
)
from uni.cost import cost_lines
from uni.data.selection import held_out_line
from uni.errors import ConfigError
from uni.figure_data import FIGURES_FILE
from uni.figures import attribution_grid, line_figure
from uni.headline import METRICS as HEADLINE
from uni.protocol_sensitivity import NAME as SENSITIVITY
from uni.protocol_sensitivity import verdict_tallies, write_protocol_sensitivity
from uni.records import RecordStore, has_records, write_csv, write_text
from uni.seed_spread import seed_spread_lines
from uni.tables import (
    load_records,
    merged,
    of_metric,
    one_config_per_cell,
    pivot,
    run_overrides,
    summarise,
    summary_table,
    with_derived_metrics,
    write_table,
)
from uni.trust_report import ranking_section, road_section, sanity_section
from uni.what_drives_uni import what_drives_uni_section

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
    held_out = held_out_line(run_dir, records["image_id"].unique())
    return (
        f"Run `{run_dir.name}`: model {models}; data split {splits}; {images} images "
        f"({skipped} skipped); {held_out}; overrides `{overrides or '-'}`; config "
        f"`{run_dir.name}/.hydra/config.yaml`. Cells: mean [95% bootstrap interval] "
        "(n images); best in bold."
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
    :func:`experiment_runs`); for any other run or sweep directory, its method x metric
    table, paired statistics and figures (:func:`runs_section`)."""
    out = Path(results_dir)
    found = experiment_runs(out)
    studies = [out / "uni_ablation", out / "baseline_ablation", out / SENSITIVITY,
               out / "sanity"]  # own layouts
    if not found and not any(p.is_dir() and any(map(has_records, [p, *p.iterdir()]))
                             for p in studies):
        report = out / "REPORT.md"
        write_text(report, "\n".join([f"# {title}", "", *runs_section(out)]) + "\n")
        return report
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
            lines += [_run_facts(run_dir, run_records), "", *cost_lines(run_dir, run_records)]
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
        lines += road_section(records, out, _table_block, _per_model)
        lines += ranking_section(records, out, _per_model)
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
            lines = []
            for budget, names in attack_budgets(scores).items():
                achieved = [f"{n.rsplit('_', 1)[0]}_{size}" for n in names
                            for size in ("linf", "l2")]
                part = r[r["metric"].isin([*names, *achieved])]
                name = f"robustness{suffix}" + (f"_{budget}" if budget else "")
                lines += [f"Budget {budget or 'of eval.robustness (default)'}; achieved "
                          "||delta|| per method in the _linf / _l2 columns:", "",
                          *_table_block(summarise(part), out, name), ""]
            return [*lines, *_table_block(summarise(floor), out, f"noise_floor{suffix}",
                                          labels=labels), "", *note,
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

    lines += what_drives_uni_section(loaded, out)
    lines += sanity_section(out, out)
    spread = seed_spread_lines(out, found, out)
    if spread:
        lines += _section("Seed spread (the same images under other seeds)", spread)
    ablation = write_ablation(out)
    if ablation:
        lines += _section("UNI ablation (development split)", ablation)
    baselines = write_baseline_ablation(out)
    if baselines:
        lines += _section("Baselines' tuning (the same budget and rule as UNI's)", baselines)
    if grid_files:
        lines += _section("Protocol sensitivity: each method's rank under each protocol", [
            f"The same attributions scored under every protocol of `{SENSITIVITY}/` "
            f"(`{grid_csv.relative_to(out)}`).", "", grid_table.read_text(), "",
            f"![ranks]({grid_figure.relative_to(out)})"])

    report = out / "REPORT.md"
    write_text(report, "\n".join(lines) + "\n")
    return report


def headline(results_dir: str | Path) -> list[str]:
    """What ``uni report`` prints after writing the report: of a ``make reproduce``
    directory, the faithfulness table of its default run (method x MuFidelity, deletion,
    insertion), else the summary table of the run or sweep; with a line saying what the
    cells hold."""
    out = Path(results_dir)
    if not has_records(out / "faithfulness"):
        table = out / "tables" / "summary.md"
        return [f"{out.name}: mean [95% bootstrap interval] (n images)",
                table.read_text().rstrip()] if table.exists() else []
    records = load_records([out / "faithfulness"])
    records = records[records["metric"].isin(HEADLINE)]  # the README's headline metrics
    facts = ", ".join(f"{column} {', '.join(sorted(records[column].dropna().astype(str).unique()))}"
                      for column in ("model", "split"))
    return [f"Faithfulness ({facts}; {records['image_id'].nunique()} images): mean [95% "
            f"bootstrap interval] (n images)", summary_table(records)]


def plain_runs(out: Path) -> list[Path]:
    """The run directories of a report that is no ``make reproduce`` layout: ``out``
    itself when it holds records, else its subdirectories that do (a sweep)."""
    if has_records(out):
        return [out]
    return sorted(d for d in out.iterdir() if d.is_dir() and has_records(d)) if out.is_dir() else []


def runs_section(out: Path) -> list[str]:
    """Any run or sweep under ``out``: the method x metric table (a sweep: one row per
    run and method, labelled by the settings that vary), each run's paired statistics
    (against UNI, else the first method) and its figures."""
    runs = plain_runs(out)
    if not runs:
        raise FileNotFoundError(
            f"no records under {out}: give a run directory (holding records.parquet), a "
            f"sweep directory of them, or a results directory of `make reproduce`")
    sweep = len(runs) > 1
    records = load_records(runs, label_runs=sweep)
    rows = "run" if sweep else "method"
    own = {run_dir: load_records([run_dir]) for run_dir in runs}
    lines = [line for run_dir in runs for line in (_run_facts(run_dir, own[run_dir]), "")]
    lines += _table_block(summarise(with_derived_metrics(records), rows=rows), out, "summary",
                          rows=rows)
    sections = _section("Method x metric", lines)
    for run_dir, run_records in own.items():
        run_records = with_derived_metrics(run_records)
        methods = method_order(run_records["method"].unique())
        reference = "uni" if "uni" in methods else methods[0]
        metrics = metric_order(m for m in run_records["metric"].unique() if m != "skipped")
        name = f"{run_dir.name}_" if sweep else ""
        paired = paired_block(run_records, metrics, out, f"_{name}", reference)
        if paired:
            sections += _section(f"Paired statistics{f' ({run_dir.name})' if sweep else ''}",
                                 paired)
        sections += _figure_section(run_dir, out, prefix=name)
    return sections


FIGURE_NAMES = ("attribution_grid", "path_scores", "deletion_curves", "insertion_curves")


def _figure_section(run_dir: Path, out: Path, prefix: str = "") -> list[str]:
    """Figures from the attributions a run kept (``figures.images`` > 0), their files
    named ``<prefix><figure>.png``."""
    path = run_dir / FIGURES_FILE
    if not path.exists():  # a regenerable cache, not in git: keep the figures drawn before
        drawn = [f"{prefix}{name}" for name in FIGURE_NAMES
                 if (out / "figures" / f"{prefix}{name}.png").exists()]
        return _section("Figures (drawn earlier; their data is a cache that a rerun of the "
                        "experiment recomputes)",
                        [f"![{name}](figures/{name}.png)" for name in drawn]) if drawn else []
    import torch

    try:
        kept = torch.load(path, weights_only=True)
        methods = method_order(kept["attributions"])
    except Exception as err:  # never the loader's advice to unpickle anything
        raise ConfigError(f"{path}: unreadable figure data ({type(err).__name__}); delete it "
                          "and rerun the experiment to redraw the figures") from None
    uni_baseline = kept["baselines"].get("uni")
    n = len(kept["image_ids"])
    records = RecordStore(run_dir, readonly=True).load() if has_records(run_dir) else None
    model = ", ".join(sorted(records["model"].dropna().unique())) if records is not None else "?"
    config = run_dir / ".hydra" / "config.yaml"
    classes = (OmegaConf.load(config).model.get("num_classes") if config.exists() else None)
    grid = attribution_grid(
        kept["images"].numpy(), {m: kept["attributions"][m].numpy() for m in methods},
        None if uni_baseline is None else uni_baseline.numpy(),
        image_titles(kept, imagenet=classes in (None, 1000)),
        out / "figures" / f"{prefix}attribution_grid.png",
    )
    lines = [f"![attribution grid]({grid.relative_to(out)})", ""]
    paths = {m: s.numpy() for m, s in kept["path_scores"].items()}
    if paths:
        curves = {m: (np.linspace(0, 1, s.shape[1]), s.mean(0)) for m, s in paths.items()}
        figure = line_figure(curves, out / "figures" / f"{prefix}path_scores.png",
                             "alpha along the path", f"F_c (mean over {n} images)",
                             f"F_c along each method's path ({model}, n={n})")
        lines += [f"![F_c along the path]({figure.relative_to(out)})", ""]
    for kind in ("deletion", "insertion"):
        curves = {m: (np.linspace(0, 1, c.shape[1]), c.numpy().mean(0))
                  for m, c in kept.get(f"{kind}_curves", {}).items()}
        if curves:
            # the area under the mean curve (the mean of the images' AUCs: trapezoids)
            auc = {m: f"{m} (AUC {np.trapezoid(y, x):.3f})" for m, (x, y) in curves.items()}
            figure = line_figure(curves, out / "figures" / f"{prefix}{kind}_curves.png",
                                 "fraction of pixels changed", f"F_c (mean over {n} images)",
                                 f"{kind.capitalize()} curves ({model}, n={n})", legend=auc)
            lines += [f"![{kind} curves]({figure.relative_to(out)})", ""]
    return _section(f"Figures ({prefix.rstrip('_') + ', ' if prefix else ''}{n} images)", lines)


def image_titles(kept: dict, imagenet: bool) -> list[str]:
    """Each kept image's id and, where the figure data has them, its explained class
    (named when the model is an ImageNet classifier, ``imagenet``) and that class's
    probability."""
    targets = kept.get("targets", {}).get("")
    probabilities = kept.get("probabilities", {}).get("")
    if targets is None or probabilities is None:
        return list(kept["image_ids"])
    from timm.data import ImageNetInfo

    names = ImageNetInfo()
    titles = []
    for image_id, target, probability in zip(kept["image_ids"], targets, probabilities):
        index = int(target)
        name = names.index_to_description(index) if imagenet else f"class {index}"
        titles.append(f"{image_id}\n{name[:24]} p={float(probability):.2f}")
    return titles


def draw_run_figures(run_dir: Path, out: Path) -> list[Path]:
    """The figures of one run's kept attributions (as in the report), drawn into
    ``out/figures`` (for its wandb dashboard)."""
    _figure_section(run_dir, out)
    return sorted((out / "figures").glob("*.png"))

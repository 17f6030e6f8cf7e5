"""Tables (pandas) and figures (matplotlib) from records (DESIGN §4).

A table cell is the mean over images with a 95% bootstrap interval and the number of
images it used; the best method per column is marked. ``uni tables RUN_DIR... [--out DIR]
[--format md|csv|latex]`` merges run directories (e.g. the shards of a multirun) and
writes the tables.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

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
from uni.protocol_sensitivity import NAME as SENSITIVITY
from uni.protocol_sensitivity import write_protocol_sensitivity
from uni.records import RECORDS_FILE, RecordStore, has_records

METHOD_ORDER = ["ig_black", "ig_white", "ig_blur", "ig_uniform", "ig_gaussian", "deeplift",
                "blur_ig", "guided_ig", "expected_gradients", "uni"]


def run_overrides(run_dir: Path) -> str:
    """The command-line overrides a Hydra run was started with, as one string."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return run_dir.name
    overrides = yaml.safe_load(path.read_text()) or []
    return " ".join(o for o in overrides if not o.startswith(("hydra.", "data.shard")))


def load_records(run_dirs: Sequence[str | Path], label_runs: bool = False) -> pd.DataFrame:
    """Records of several run directories, merged, one row per image x method x metric.

    ``label_runs=True`` adds a ``run`` column with each run's overrides (for sweeps, where
    the runs differ in settings rather than in their images)."""
    frames = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not has_records(run_dir):
            raise FileNotFoundError(f"{run_dir} holds no {RECORDS_FILE}")
        frame = RecordStore(run_dir).load()
        if label_runs:  # a sweep's rows: its overrides, and the method when it has several
            label = run_overrides(run_dir)
            several = frame["method"].nunique() > 1
            frame["run"] = label + " | " + frame["method"] if several else label
        frames.append(frame)
    records = merged(frames)
    one_config_per_cell(records, ", ".join(str(d) for d in run_dirs))
    return records


def one_config_per_cell(records: pd.DataFrame, where: str) -> None:
    """Refuse, in one line, records where one table cell (a model and method, and run when
    labelled) would pool rows of different configs (``config_hash``)."""
    cell = [c for c in ("model", "method", "run") if c in records]
    if not len(records):
        return
    configs = records.groupby(cell)["config_hash"].unique()
    mixed = configs[configs.map(len) > 1]
    if len(mixed):
        key, hashes = next(iter(mixed.items()))
        raise ConfigError(
            f"{where}: {dict(zip(cell, key if isinstance(key, tuple) else (key,)))} has "
            f"records of {len(hashes)} configs ({', '.join(sorted(hashes))}); a table cell "
            "would pool them: keep one config per run directory")


def merged(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Record frames concatenated, a row stored by two of them kept once (the last)."""
    keys = ["image_id", "model", "method", "config_hash", "metric"]
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates(subset=keys, keep="last").sort_values(keys, ignore_index=True)


def summarise(records: pd.DataFrame, rows: str | list[str] = "method", columns: str = "metric"):
    """Long table: one line per (rows, column) cell with mean, interval and n."""
    rows = [rows] if isinstance(rows, str) else list(rows)
    values = records[records["metric"] != "skipped"]
    out = []
    for key, group in values.groupby([*rows, columns], sort=False):
        finite = group["value"].to_numpy(dtype=float)
        low, high = stats.bootstrap_interval(finite)
        usable = np.isfinite(finite)
        out.append({
            **dict(zip([*rows, columns], key if isinstance(key, tuple) else (key,))),
            "mean": float(finite[usable].mean()) if usable.any() else math.nan,
            "low": low, "high": high, "n": int(usable.sum()), "n_total": len(finite),
        })
    return pd.DataFrame(out)


def _order(index: pd.Index) -> list:
    known = [m for m in METHOD_ORDER if m in index]
    return known + sorted(i for i in index if i not in known)


def pivot(
    summary: pd.DataFrame, rows: str = "method", columns: str = "metric",
    lower_is_better: bool | None = None,
) -> pd.DataFrame:
    """Wide table of strings ``mean [low, high] (n)``; the best per column in bold.
    Which direction is better comes from the column's metric name unless
    ``lower_is_better`` says (for columns that are not metrics, e.g. step counts)."""
    table = {}
    for column, group in summary.groupby(columns, sort=False):
        means = group.set_index(rows)["mean"]
        lower = stats.lower_is_better(column) if lower_is_better is None else lower_is_better
        best = means.idxmin() if lower else means.idxmax() if means.notna().any() else None
        cells = {}
        for _, line in group.iterrows():
            text = f"{line['mean']:.3f} [{line['low']:.3f}, {line['high']:.3f}] ({line['n']})"
            cells[line[rows]] = f"**{text}**" if line[rows] == best else text
        table[f"{column} {'↓' if lower else '↑'}"] = cells
    wide = pd.DataFrame(table)
    return wide.loc[_order(wide.index)]


def write_table(
    summary: pd.DataFrame, path: Path, formats: Sequence[str] = ("md", "csv"), **pivot_options
) -> list[Path]:
    """One table as Markdown / LaTeX (the wide, readable form) and CSV (the long summary
    with numeric mean, low, high, n), side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wide = pivot(summary, **pivot_options)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{'tex' if fmt == 'latex' else fmt}")
        if fmt == "md":
            target.write_text(wide.to_markdown() + "\n")
        elif fmt == "csv":
            summary.to_csv(target, index=False)
        elif fmt == "latex":
            latex = wide.replace(r"\*\*(.*)\*\*", r"\\textbf{\1}", regex=True)
            target.write_text(latex.to_latex(escape=False))
        else:
            raise ValueError(f"format={fmt!r} is not one of ['md', 'csv', 'latex']")
        written.append(target)
    return written


def tables_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="uni tables", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    parser.add_argument("--format", action="append", choices=["md", "csv", "latex"])
    parser.add_argument(
        "--by-run", action="store_true",
        help="one row per run directory, labelled by its overrides (sweeps)",
    )
    args = parser.parse_args(argv)
    try:
        records = load_records(args.run_dirs, label_runs=args.by_run)
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    records = with_insertion_minus_deletion(records)
    rows = "run" if args.by_run else "method"
    summary = summarise(records, rows=rows)
    written = write_table(summary, args.out / "summary", args.format or ["md", "csv"], rows=rows)
    print(pivot(summary, rows=rows).to_markdown())
    print("written:", ", ".join(str(p) for p in written))


# ---------------------------------------------------------------- figures (matplotlib)


def _pyplot():
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
    plt = _pyplot()
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
    return _save(fig, path)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name in _order(pd.Index(list(curves))):
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
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


# ---------------------------------------------------------------- the report

EXPERIMENTS = ("faithfulness", "robustness", "stability", "imagenet_c")


def _metric_family(records: pd.DataFrame, pattern: str) -> pd.DataFrame:
    return records[records["metric"].str.match(pattern)]


def with_insertion_minus_deletion(records: pd.DataFrame) -> pd.DataFrame:
    """Adds the per-image ``insertion-deletion`` rows (paired on the same image)."""
    keys = [k for k in ("image_id", "model", "method", "config_hash", "run") if k in records]
    # only the (image, method, ...) pairs that exist; a NaN value stays NaN
    wide = (records[records["metric"].isin(["insertion", "deletion"])]
            .set_index([*keys, "metric"])["value"].unstack("metric"))
    if not {"insertion", "deletion"} <= set(wide.columns):
        return records
    difference = (wide["insertion"] - wide["deletion"]).rename("value").reset_index()
    difference["metric"] = "insertion-deletion"
    return pd.concat([records, difference], ignore_index=True)


def stability_curves(records: pd.DataFrame, quantity: str = "l1"):
    """Mean (and bootstrap band) of ``stability_<quantity>@B`` against B, per method."""
    part = _metric_family(records, rf"^stability_{quantity}@\d+$").copy()
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
                 lower_is_better: bool | None = None):
    if summary.empty:
        return ["(no records)"]
    options = {"rows": rows, "columns": columns, "lower_is_better": lower_is_better}
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
    if not found:
        raise FileNotFoundError(f"no experiment runs ({', '.join(EXPERIMENTS)}) under {out}")
    # each experiment: its records (every run, a row stored twice counted once), its runs
    loaded = {}
    for experiment, run_dirs in found.items():
        runs = [(run_dir, load_records([run_dir])) for run_dir in run_dirs]
        loaded[experiment] = merged([r for _, r in runs]), runs
        one_config_per_cell(loaded[experiment][0], f"{out}: experiment {experiment}")
    lines = [f"# {title}", "", *claims_section(loaded, EXPERIMENTS)]
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
        records = with_insertion_minus_deletion(records)
        lines += _section("Faithfulness: MuFidelity (model x method)", [
            *run_lines,
            *_table_block(summarise(_metric_family(records, "^mufidelity$"), rows=["method"],
                                    columns="model"), out, "mufidelity", columns="model"),
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
            scores = sorted(m for m in r["metric"].unique() if ATTACK_SCORE.match(m))
            floor = _metric_family(r, ".*noise_floor")
            floor = floor.assign(metric="noise floor " + floor["metric"].str.split(
                "noise_floor").str[-1].str.strip("_"))
            note = ["Noise floor: the same scores between two explanations of the "
                    "unperturbed image (independent draws or starts), a reference for the "
                    "attacks' scores.", ""] if len(floor) else []
            table = summarise(pd.concat([r[r["metric"].isin(scores)], floor]))
            return [*_table_block(table, out, f"robustness{suffix}"), "", *note,
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
            part = _metric_family(r, r"^stability_l1@\d+$").copy()
            part["B"] = part["metric"].str.split("@").str[1].astype(int)
            summary = summarise(part, rows="method", columns="B").sort_values("B")
            budgets = [f"stability_l1@{b}" for b in summary["B"].unique()]
            return [*_table_block(summary.assign(B=summary["B"].map("B={}".format)), out,
                                  f"stability_l1{suffix}", columns="B", lower_is_better=True),
                    "", f"![stability]({figure.relative_to(out)})", "",
                    *paired_block(r, budgets, out, suffix)]

        lines += _section("Riemann stability (normalised L1 to the reference, method x B)",
                          [*run_lines, *_per_model(records, stability_block)])

    if "imagenet_c" in found:
        records, run_lines = facts("imagenet_c")

        def imagenet_c_block(r: pd.DataFrame, suffix: str) -> list[str]:
            part = _metric_family(r, "^mufidelity$")
            by_severity = summarise(part, rows=["method", "corruption"], columns="severity")
            name = f"imagenet_c_by_severity{suffix}.csv"
            by_severity.to_csv(_mkdir(out / "tables") / name, index=False)
            families, _ = imagenet_c_families(r)
            return [*_table_block(summarise(part, rows="method", columns="corruption"), out,
                                  f"imagenet_c_mufidelity{suffix}", columns="corruption"),
                    "", f"Per severity: `tables/{name}`.", "",
                    "Per corruption family, paired on the base image (its mean over the "
                    "family's corruptions and severities):", "",
                    *paired_block(families, sorted(families["metric"].unique()), out, suffix)]

        lines += _section("ImageNet-C: MuFidelity (method x corruption, all severities)",
                          [*run_lines, *_per_model(records, imagenet_c_block)])

    ablation = write_ablation(out)
    if ablation:
        lines += _section("UNI ablation (development split)", ablation)
    sensitivity = out / SENSITIVITY
    if has_records(sensitivity):
        written = write_protocol_sensitivity(sensitivity, out)
        if written:
            csv, table, figure = written
            lines += _section("Protocol sensitivity: each method's rank under each protocol", [
                f"The same attributions scored under every protocol of `{SENSITIVITY}/` "
                f"(`{csv.relative_to(out)}`).", "", table.read_text(), "",
                f"![ranks]({figure.relative_to(out)})"])

    report = out / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    kept = torch.load(path, weights_only=True)
    methods = list(kept["attributions"])
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


def report_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="uni report", description=build_report.__doc__)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--title", default="uni-bench report")
    parser.add_argument("--wandb", action="store_true",
                        help="also push the tables, figures and REPORT to a wandb run (offline "
                        "without WANDB_API_KEY; `wandb sync` later)")
    parser.add_argument("--wandb-project", default="uni-bench")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.results_dir, args.title)
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(f"written: {report}")
    if args.wandb:
        from uni.dashboard import push_results

        print(f"wandb: {push_results(args.results_dir, args.wandb_project)}")

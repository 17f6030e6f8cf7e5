"""Records -> tables (pandas; docs/design.md §4): loading run directories, per-cell summaries and
the wide method x metric tables.

A table cell is the mean over images with a 95% bootstrap interval and the number of
images it used; the best method per column is marked. Which direction is better and the
order of rows and columns come from the registries' metadata in :mod:`uni.catalog`
(:func:`~uni.catalog.direction`, :func:`~uni.catalog.metric_order`,
:func:`~uni.catalog.method_order`), which imports neither torch nor timm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from uni.analysis import stats
from uni.catalog import direction, floor_methods, method_order, metric_order, metric_spec, metrics
from uni.errors import ConfigError
from uni.records import RECORDS_FILE, RecordStore, has_records, write_csv, write_text

SKIPPED = "skipped"  # the metric of an unreadable image's record
FORMATS = ("md", "csv", "latex")


def override_list(run_dir: Path) -> list[str] | None:
    """The command-line overrides a Hydra run was started with (``None``: not a Hydra
    run), less Hydra's own and the shard's."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return None
    overrides = yaml.safe_load(path.read_text()) or []
    return [o for o in overrides if not o.startswith(("hydra.", "data.shard"))]


def run_overrides(run_dir: Path) -> str:
    """The command-line overrides a Hydra run was started with, as one string."""
    overrides = override_list(run_dir)
    return run_dir.name if overrides is None else " ".join(overrides)


def run_labels(run_dirs: Sequence[Path]) -> dict[Path, str]:
    """Each run's name in a table of several (a sweep): its overrides that not every run
    shares (what varies), else its directory's name."""
    overrides = {d: override_list(d) or [] for d in run_dirs}
    shared = set.intersection(*map(set, overrides.values())) if len(overrides) > 1 else set()
    return {d: " ".join(o for o in overrides[d] if o not in shared) or d.name for d in run_dirs}


def load_records(run_dirs: Sequence[str | Path], label_runs: bool = False) -> pd.DataFrame:
    """Records of several run directories, merged, one row per image x method x metric.

    ``label_runs=True`` adds a ``run`` column with each run's overrides that vary between
    the runs (:func:`run_labels`; for sweeps, where the runs differ in settings rather
    than in their images)."""
    frames = []
    run_dirs = [Path(d) for d in run_dirs]
    labels = run_labels(run_dirs) if label_runs else {}
    for run_dir in run_dirs:
        if not has_records(run_dir):
            raise FileNotFoundError(f"{run_dir} holds no {RECORDS_FILE}")
        frame = RecordStore(run_dir, readonly=True).load()
        if label_runs:  # a sweep's rows: what varies, and the method when it has several
            label = labels[run_dir]
            several = frame["method"].nunique() > 1
            frame["run"] = label + " | " + frame["method"] if several else label
        frames.append(frame)
    records = merged(frames)
    one_config_per_cell(records, ", ".join(str(d) for d in run_dirs))
    return records


def one_config_per_cell(records: pd.DataFrame, where: str) -> None:
    """Refuse, in one line, records where one table cell (a model, method and metric, and
    run when labelled) would pool rows of different configs (``config_hash``: the
    method's and that metric's options). ``skipped`` rows are no cell: an unreadable
    image has one under each metric entry's key."""
    cell = [c for c in ("model", "method", "metric", "run") if c in records]
    records = records[records["metric"] != SKIPPED] if len(records) else records
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


def of_metric(records: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows whose record name the registered metric ``name`` covers (e.g. every
    ``noise_floor_*``)."""
    names = records["metric"].unique()
    covered = {m for m in names if m != SKIPPED and metric_spec(m).name == name}
    return records[records["metric"].isin(covered)]


def with_derived_metrics(records: pd.DataFrame) -> pd.DataFrame:
    """Adds the per-image rows of every derived metric of the registry (e.g.
    ``insertion-deletion``), paired on the same image, model and method (and run); each
    metric has one config per cell (:func:`one_config_per_cell`). Where a record it needs
    is missing there is no row, and a NaN value stays NaN."""
    keys = [k for k in ("image_id", "model", "method", "run") if k in records]
    frames = [records]
    for spec in metrics().values():
        if not spec.derived_from:
            continue
        wide = (records[records["metric"].isin(spec.derived_from)]
                .set_index([*keys, "metric"])["value"].unstack("metric"))
        if not set(spec.derived_from) <= set(wide.columns):
            continue
        values = spec.combine(*(wide[name] for name in spec.derived_from))
        frames.append(values.rename("value").reset_index().assign(metric=spec.name))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else records


def summarise(records: pd.DataFrame, rows: str | list[str] = "method", columns: str = "metric"):
    """Long table: one line per (rows, column) cell with mean, interval and n."""
    rows = [rows] if isinstance(rows, str) else list(rows)
    values = records[records["metric"] != SKIPPED]
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


def pivot(
    summary: pd.DataFrame, rows: str = "method", columns: str = "metric",
    metric: str | None = None, labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Wide table of strings ``mean [low, high] (n)``; the best per column in bold and
    its direction (↑ higher, ↓ lower is better; none for a side value) in the header.

    Columns that are metrics (``columns="metric"``) take their direction from the
    registry and its order; other columns (models, corruptions, budgets) hold the values
    of one ``metric``, whose direction they take, in the summary's order. Rows that are
    methods come in the method registry's order; the trivial maps
    (:func:`uni.catalog.floor_methods`) close the table as a block of rows labelled
    ``floor: <name>``, never marked best. ``labels``: a column's name in the header, when
    not its own."""
    if metric is None and columns != "metric":
        raise ValueError(f"pivot: columns={columns!r} are not metrics; say which metric "
                         "their cells hold (metric=...)")
    groups = dict(list(summary.groupby(columns, sort=False)))
    order = metric_order(groups) if columns == "metric" else list(groups)
    table = {}
    for column in order:
        group = groups[column]
        means = group.set_index(rows)["mean"]
        means = means[~means.index.isin(floor_methods())]  # floors are never the best
        better = direction(column if metric is None else metric)
        best = set()  # every method at the best mean: a tie is bold in each of its rows
        if better is not None and means.notna().any():
            top = means.min() if better == "lower" else means.max()
            best = set(means.index[means == top])
        cells = {}
        for _, line in group.iterrows():
            text = (f"{line['mean']:.3f} [{line['low']:.3f}, {line['high']:.3f}] ({line['n']})"
                    if line["n"] else f"n/a (0 of {line['n_total']})")  # e.g. top-k on DeepLIFT
            cells[line[rows]] = f"**{text}**" if line[rows] in best else text
        arrow = {"higher": " ↑", "lower": " ↓", None: ""}[better]
        table[f"{(labels or {}).get(column, column)}{arrow}"] = cells
    wide = pd.DataFrame(table)
    order = method_order(wide.index)
    wide = wide.loc[[m for m in order if m not in floor_methods()]
                    + [m for m in order if m in floor_methods()]]
    return wide.rename(index={m: f"floor: {m}" for m in wide.index if m in floor_methods()})


def write_table(
    summary: pd.DataFrame, path: Path, formats: Sequence[str] = ("md", "csv"), **pivot_options
) -> list[Path]:
    """One table as Markdown / LaTeX (the wide, readable form) and CSV (the long summary
    with numeric mean, low, high, n), side by side."""
    wide = pivot(summary, **pivot_options)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{'tex' if fmt == 'latex' else fmt}")
        if fmt == "md":
            write_text(target, wide.to_markdown() + "\n")
        elif fmt == "csv":
            write_csv(summary, target)
        elif fmt == "latex":
            latex = wide.replace(r"\*\*(.*)\*\*", r"\\textbf{\1}", regex=True)
            write_text(target, latex.to_latex(escape=False))
        else:
            raise ValueError(f"format={fmt!r} is not one of {list(FORMATS)}")
        written.append(target)
    return written


def summary_table(records: pd.DataFrame, rows: str = "method") -> str:
    """The method x metric table of ``records`` (derived metrics included) as Markdown:
    what a run prints when it ends."""
    summary = summarise(with_derived_metrics(records), rows=rows)
    return "(no records)" if summary.empty else pivot(summary, rows=rows).to_markdown()

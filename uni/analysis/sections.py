"""The building blocks of REPORT.md's sections, shared by the report
(:mod:`uni.analysis.report`) and the experiments' specs (:mod:`uni.experiments`): a
section, a table written beside the report, a block per model, a run's facts and the
figures of the attributions a run kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from uni.analysis.baseline_ablation import TUNED
from uni.analysis.figures import attribution_grid, line_figure
from uni.analysis.selection import held_out_line
from uni.analysis.tables import pivot, run_overrides, write_table
from uni.catalog import method_order
from uni.errors import ConfigError
from uni.records import FIGURES_FILE, RecordStore, has_records, saved_config


@dataclass
class Context:
    """What an experiment's section (:attr:`uni.experiments.Experiment.section`) reads:
    ``out``, the results directory (tables and figures go under it); ``runs``, the
    experiment's run directories; for a pooled experiment ``records`` (every run's,
    merged) and ``run_lines`` (each run's facts and cost); ``verdicts``, shared by the
    whole report: (model, metric) -> a claim's verdicts elsewhere, shown as a column of
    the Claims table (the protocol grid's)."""

    out: Path
    runs: list[Path]
    records: pd.DataFrame | None = None
    run_lines: list[str] = field(default_factory=list)
    verdicts: dict[tuple[str, str], str] = field(default_factory=dict)


def section(title: str, lines: list[str], level: int = 2) -> list[str]:
    return [f"{'#' * level} {title}", "", *lines, ""]


def table_block(summary: pd.DataFrame, out: Path, name: str, rows="method", columns="metric",
                metric: str | None = None, labels: dict[str, str] | None = None):
    """A table written under ``out/tables`` and shown in the report (``metric`` and
    ``labels`` as :func:`uni.analysis.tables.pivot` takes them)."""
    if summary.empty:
        return ["(no records)"]
    options = {"rows": rows, "columns": columns, "metric": metric, "labels": labels}
    write_table(summary, out / "tables" / name, ("md", "csv"), **options)
    table = pivot(summary, **options).to_markdown()
    return [table, "", f"CSV: `tables/{name}.csv`"]


# the options a reader needs to know a tuned entry by: UNI's radius, and the options the
# baselines' tuning selects
TUNED_OPTIONS = {"uni": ("eps", "norm"), **TUNED}


def tuned_settings(run_dir: Path, methods) -> str:
    """``uni eps=0.76078 norm=l2; ig_blur_tuned sigma=20.0; ...``: the tuned options of
    UNI's entries and the ``*_tuned`` ones among ``methods``, from the configs run in
    ``run_dir`` (``configs/*.yaml``, the newest holding the entry)."""
    import yaml

    configs = sorted((run_dir / "configs").glob("*.yaml"), key=lambda p: p.stat().st_mtime)
    entries = {}
    for path in configs:
        for name, options in ((yaml.safe_load(path.read_text()) or {}).get("method") or {}).items():
            entries[name] = options or {}
    parts = []
    for name in method_order(sorted(set(methods) & set(entries))):
        kind = entries[name].get("kind", name)
        if kind in TUNED_OPTIONS and (kind == "uni" or name.endswith("_tuned")):
            shown = " ".join(f"{k}={entries[name][k]}" for k in TUNED_OPTIONS[kind]
                             if entries[name].get(k) is not None)
            if shown:  # an entry stating none takes the method's defaults
                parts.append(f"{name} {shown}")
    return "; ".join(parts)


def run_facts(run_dir: Path, records: pd.DataFrame) -> str:
    overrides = run_overrides(run_dir)
    images = records["image_id"].nunique()
    skipped = records.loc[records["metric"] == "skipped", "image_id"].nunique()
    models = ", ".join(sorted(records["model"].dropna().unique()))
    splits = ", ".join(sorted(records["split"].dropna().astype(str).unique()))
    held_out = held_out_line(run_dir, records["image_id"].unique())
    configs = len(list((run_dir / "configs").glob("*.yaml")))
    invocations = (f"{configs} configs run here (`{run_dir.name}/configs/`), the last one's "
                   if configs > 1 else "")
    settings = tuned_settings(run_dir, records["method"].unique())
    return (
        f"Run `{run_dir.name}`: model {models}; data split {splits}; {images} images "
        f"({skipped} skipped); {held_out}; {invocations}overrides `{overrides or '-'}`; "
        f"config `{run_dir.name}/.hydra/config.yaml`"
        + (f"; tuned settings: {settings}" if settings else "")
        + ". Cells: mean [95% bootstrap interval] (n images); best in bold."
    )


def per_model(records: pd.DataFrame, block) -> list[str]:
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


FIGURE_NAMES = ("attribution_grid", "path_scores", "deletion_curves", "insertion_curves")


def figure_section(run_dir: Path, out: Path, prefix: str = "", level: int = 2) -> list[str]:
    """Figures from the attributions a run kept (``figures.images`` > 0), their files
    named ``<prefix><figure>.png``."""
    path = run_dir / FIGURES_FILE
    if not path.exists():  # a regenerable cache, not in git: keep the figures drawn before
        drawn = [f"{prefix}{name}" for name in FIGURE_NAMES
                 if (out / "figures" / f"{prefix}{name}.png").exists()]
        return section("Figures (drawn earlier; their data is a cache that a rerun of the "
                       "experiment recomputes)",
                       [f"![{name}](figures/{name}.png)" for name in drawn], level) if drawn else []
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
    saved = saved_config(run_dir)
    classes = saved.model.get("num_classes") if saved is not None else None
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
    run_images = 0 if records is None else records["image_id"].nunique()
    of_run = f" of the run's {run_images}, illustrations" if run_images > n else ""
    return section(f"Figures ({prefix.rstrip('_') + ', ' if prefix else ''}{n} images{of_run})",
                   lines, level)


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

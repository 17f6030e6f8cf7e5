"""REPORT.md: tables, figures and the paired statistics of the runs under a results
directory (docs/design.md §4), assembled section by section (``uni report RESULTS_DIR``,
:mod:`uni.analysis.commands`).

Each run directory belongs to the registered experiment its name says (``<experiment>`` or
``<experiment>-<suffix>``, :mod:`uni.experiments`); the experiments' specs give the Claims
table's rows and their sections, in their order. A directory of an unregistered
experiment, or of one without a section of its own, gets the generic section of a run or
sweep (:func:`runs_section`): nothing with records is left out. Tables come from
:mod:`uni.analysis.tables`, figures from :mod:`uni.analysis.figures`, the claims and
paired statistics from :mod:`uni.analysis.claims`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uni.analysis.claims import claims_section, paired_block
from uni.analysis.headline import METRICS as HEADLINE
from uni.analysis.sections import (
    Context,
    figure_section,
    run_facts,
    section,
    table_block,
)
from uni.analysis.seed_spread import SEEDS_DIR, seed_spread_lines
from uni.analysis.tables import (
    load_records,
    merged,
    one_config_per_cell,
    summarise,
    summary_table,
    with_derived_metrics,
)
from uni.analysis.what_drives_uni import what_drives_uni_section
from uni.cost import cost_lines
from uni.experiments import experiment_of, in_report_order
from uni.methods import method_order
from uni.metrics import metric_order
from uni.records import has_records, write_text


def _holds_runs(directory: Path) -> bool:
    """A run (records) or a sweep of runs (records one level down)."""
    return has_records(directory) or any(
        has_records(child) for child in directory.iterdir() if child.is_dir())


def _nested_results(directory: Path) -> bool:
    """A results directory of its own (``seeds/``, another ``make reproduce``): runs of
    registered experiments one level down; it has its own report."""
    return any(experiment_of(child.name) for child in directory.iterdir()
               if child.is_dir() and has_records(child))


def experiment_runs(results_dir: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """The directories under ``results_dir`` that hold runs: by registered experiment
    (its own ``<experiment>`` first, then every ``<experiment>-<suffix>``, whatever the
    suffix: ``make reproduce MODEL=efficientnet_lite1`` writes
    ``faithfulness-efficientnet_lite1``, the same experiment on another model; then the
    runs of experiments that join it), and those of no registered experiment."""
    runs: dict[str, list[Path]] = {}
    unknown: list[Path] = []
    if not results_dir.is_dir():
        return runs, unknown
    for directory in sorted(d for d in results_dir.iterdir() if d.is_dir()):
        if directory.name == SEEDS_DIR or not _holds_runs(directory):
            continue
        spec = experiment_of(directory.name)
        if spec is not None:
            runs.setdefault(spec.name, []).append(directory)
        elif not _nested_results(directory):
            unknown.append(directory)
    for spec in in_report_order():  # the experiment's own directory, then its suffixes
        if spec.name in runs:
            runs[spec.name].sort(key=lambda d, name=spec.name: (
                d.name != name, not d.name.startswith(f"{name}-"), d.name))
    return runs, unknown


def build_report(results_dir: str | Path, title: str = "uni-bench report") -> Path:
    """Tables, figures and ``REPORT.md`` for the experiment runs under ``results_dir``
    (one subdirectory per experiment, as ``make reproduce`` writes them; see
    :func:`experiment_runs`); for any other run or sweep directory, its method x metric
    table, paired statistics and figures (:func:`runs_section`)."""
    out = Path(results_dir)
    found, unknown = experiment_runs(out) if not has_records(out) else ({}, [])
    report = out / "REPORT.md"
    if not found:
        write_text(report, "\n".join([f"# {title}", "", *runs_section(out, out)]) + "\n")
        return report
    specs = [spec for spec in in_report_order() if spec.name in found]
    # each pooled experiment with a section: its records (every run, a row stored twice
    # counted once); the generic section reads its runs one by one
    loaded, contexts, verdicts = {}, {}, {}
    for spec in specs:
        contexts[spec.name] = Context(out, found[spec.name], verdicts=verdicts)
        if not spec.pooled or spec.section is None:
            continue
        runs = [(run_dir, load_records([run_dir])) for run_dir in found[spec.name]]
        loaded[spec.name] = merged([r for _, r in runs]), runs
        one_config_per_cell(loaded[spec.name][0], f"{out}: experiment {spec.name}")
        contexts[spec.name].records = loaded[spec.name][0]
        contexts[spec.name].run_lines = _facts(runs)

    def sections(pooled: bool) -> list[str]:
        return [line for spec in specs if spec.section is not None and spec.pooled == pooled
                for line in spec.section(contexts[spec.name])]

    # the experiments' sections first: one may add a column to the Claims table
    body = sections(pooled=True)
    body += what_drives_uni_section(loaded, out)
    spread = seed_spread_lines(out, found, out)
    if spread:
        body += section("Seed spread (the same images under other seeds)", spread)
    body += sections(pooled=False)
    for spec in specs:  # registered, no section of its own
        if spec.section is None:
            body += _generic(spec.title, found[spec.name], out)
    body += _generic("no registered experiment", unknown, out)
    claimed = [spec for spec in in_report_order() if spec.claims is not None
               and (spec.reproduce or spec.name in loaded)]
    lines = [f"# {title}", "", *claims_section(loaded, claimed, verdicts or None)]
    missing = [spec.name for spec in in_report_order()
               if spec.reproduce and spec.name not in found]
    if missing:
        lines += [f"Not run yet (no records): {', '.join(missing)}.", ""]
    write_text(report, "\n".join([*lines, *body]) + "\n")
    return report


def _facts(runs: list[tuple[Path, pd.DataFrame]]) -> list[str]:
    """A line per run and its cost; a note where two runs hold the same model (its cells
    pool them)."""
    lines, seen = [], {}
    for run_dir, run_records in runs:
        lines += [run_facts(run_dir, run_records), "", *cost_lines(run_dir, run_records)]
        for model in run_records["model"].dropna().unique():
            if model in seen:
                lines += [f"Note: runs `{seen[model]}` and `{run_dir.name}` both hold "
                          f"model {model}; its cells pool them.", ""]
            seen.setdefault(model, run_dir.name)
    return lines


def _generic(what: str, directories: list[Path], out: Path) -> list[str]:
    """The generic section of each of ``directories`` (a run or a sweep), its tables and
    figures named after it."""
    lines = []
    for directory in directories:
        lines += [f"## Runs `{directory.name}` ({what})", "",
                  *runs_section(directory, out, prefix=f"{directory.name}_", level=3)]
    return lines


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


def runs_section(runs_dir: Path, out: Path, prefix: str = "", level: int = 2) -> list[str]:
    """Any run or sweep under ``runs_dir``: the method x metric table (a sweep: one row
    per run and method, labelled by the settings that vary), each run's paired statistics
    (against UNI, else the first method) and its figures; its tables and figures under
    ``out``, named with ``prefix``; headings at ``level``."""
    runs = plain_runs(runs_dir)
    if not runs:
        raise FileNotFoundError(
            f"no records under {runs_dir}: give a run directory (holding records.parquet), a "
            f"sweep directory of them, or a results directory of `make reproduce`")
    sweep = len(runs) > 1
    records = load_records(runs, label_runs=sweep)
    rows = "run" if sweep else "method"
    own = {run_dir: load_records([run_dir]) for run_dir in runs}
    heading = "#" * level
    lines = [line for run_dir in runs for line in (run_facts(run_dir, own[run_dir]), "")]
    lines += table_block(summarise(with_derived_metrics(records), rows=rows), out,
                         f"{prefix}summary", rows=rows)
    sections = [f"{heading} Method x metric", "", *lines, ""]
    for run_dir, run_records in own.items():
        run_records = with_derived_metrics(run_records)
        methods = method_order(run_records["method"].unique())
        reference = "uni" if "uni" in methods else methods[0]
        metrics = metric_order(m for m in run_records["metric"].unique() if m != "skipped")
        name = f"{prefix}{run_dir.name}_" if sweep else prefix
        paired = paired_block(run_records, metrics, out, f"_{name}", reference)
        if paired:
            sections += [f"{heading} Paired statistics"
                         f"{f' ({run_dir.name})' if sweep else ''}", "", *paired, ""]
        sections += figure_section(run_dir, out, prefix=name, level=level)
    return sections


def draw_run_figures(run_dir: Path, out: Path) -> list[Path]:
    """The figures of one run's kept attributions (as in the report), drawn into
    ``out/figures`` (for its wandb dashboard)."""
    figure_section(run_dir, out)
    return sorted((out / "figures").glob("*.png"))

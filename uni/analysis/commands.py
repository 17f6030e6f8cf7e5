"""The subcommands on stored records: ``uni tables RUN_DIR... [--out DIR] [--format
md|csv|latex] [--by-run]`` (merges run directories, e.g. the shards of a multirun, into a
method x metric table, printed; files only with ``--out``) and ``uni report DIR`` (a run,
a sweep or a results directory: :func:`uni.analysis.report.build_report`).
A problem with the records is one line (``error: ...``), exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from uni.analysis.report import build_report, headline, plain_runs
from uni.analysis.tables import (
    FORMATS,
    load_records,
    pivot,
    summarise,
    with_derived_metrics,
    write_table,
)
from uni.errors import ConfigError, os_error_line


def tables_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="uni tables", description="Method x metric tables (mean [95% bootstrap "
        "interval] (n images), best per column in bold) of one or more run directories.")
    parser.add_argument("run_dirs", nargs="+", type=Path,
                        help="run directories, or sweep directories (their runs)")
    parser.add_argument("--out", type=Path,
                        help="also write the table (summary.md and .csv) into this directory")
    parser.add_argument("--format", action="append", choices=list(FORMATS),
                        help="the files --out writes (default: md and csv)")
    parser.add_argument(
        "--by-run", action="store_true",
        help="one row per run directory, labelled by the overrides that vary between them (sweeps)",
    )
    args = parser.parse_args(argv)
    rows = "run" if args.by_run else "method"
    # a sweep directory stands for its runs
    run_dirs = [run for d in args.run_dirs for run in plain_runs(d) or [d]]
    try:
        records = with_derived_metrics(load_records(run_dirs, label_runs=args.by_run))
        summary = summarise(records, rows=rows)
        written = [] if args.out is None else write_table(
            summary, args.out / "summary", args.format or ["md", "csv"], rows=rows)
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # an unwritable --out, a file where a directory should be
        sys.exit(f"error: cannot write the tables: {os_error_line(err)}")
    print(pivot(summary, rows=rows).to_markdown())
    if written:
        print("written:", ", ".join(str(p) for p in written))


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
        print("\n".join(headline(args.results_dir)))
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # an unwritable REPORT.md, a file where tables/ should be
        sys.exit(f"error: cannot write the report: {os_error_line(err)}")
    print(f"report: {report} (its tables in {report.parent / 'tables'}, figures in "
          f"{report.parent / 'figures'})")
    if args.wandb:
        from uni.analysis.dashboard import push_results

        print(f"wandb: {push_results(args.results_dir, args.wandb_project)}")

"""The subcommands on stored records: ``uni tables RUN_DIR... [--out DIR] [--format
md|csv|latex] [--by-run]`` (merges run directories, e.g. the shards of a multirun, into a
method x metric table) and ``uni report RESULTS_DIR`` (:func:`uni.report.build_report`).
A problem with the records is one line (``error: ...``), exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from uni.errors import ConfigError, os_error_line
from uni.report import build_report
from uni.tables import FORMATS, load_records, pivot, summarise, with_derived_metrics, write_table


def tables_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="uni tables", description="Method x metric tables (mean [95% bootstrap "
        "interval] (n images), best per column in bold) of one or more run directories.")
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    parser.add_argument("--format", action="append", choices=list(FORMATS))
    parser.add_argument(
        "--by-run", action="store_true",
        help="one row per run directory, labelled by its overrides (sweeps)",
    )
    args = parser.parse_args(argv)
    rows = "run" if args.by_run else "method"
    try:
        records = with_derived_metrics(load_records(args.run_dirs, label_runs=args.by_run))
        summary = summarise(records, rows=rows)
        written = write_table(summary, args.out / "summary", args.format or ["md", "csv"],
                              rows=rows)
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # an unwritable --out, a file where a directory should be
        sys.exit(f"error: cannot write the tables: {os_error_line(err)}")
    print(pivot(summary, rows=rows).to_markdown())
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
        print(f"written: {build_report(args.results_dir, args.title)}")
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # an unwritable REPORT.md, a file where tables/ should be
        sys.exit(f"error: cannot write the report: {os_error_line(err)}")
    if args.wandb:
        from uni.dashboard import push_results

        print(f"wandb: {push_results(args.results_dir, args.wandb_project)}")

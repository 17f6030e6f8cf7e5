"""What a wandb dashboard shows: the paper's tables and figures, not only records.

:func:`log_run` (at the end of every run with ``logger=wandb``): the per-method summary as
run summary keys ``"<metric>/<method>"`` (the mean; ``/low`` and ``/high``: its 95%
bootstrap interval; ``/n``: the images it used), so the project's runs table compares
methods, models and protocols; the summary as tables; the figures of the kept attributions.
:func:`push_results` (``uni report RESULTS --wandb``): a results directory's tables,
figures and REPORT, after the fact.
"""

from __future__ import annotations

import base64
import html
import math
import re
import tempfile
from pathlib import Path

import pandas as pd

from uni.analysis.report import draw_run_figures
from uni.analysis.tables import pivot, summarise, with_derived_metrics
from uni.loggers import NoLogger, WandbLogger, shown_path

MARKDOWN_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")


def summary_values(summary: pd.DataFrame) -> dict[str, float]:
    """Run summary keys of a :func:`~uni.analysis.report.summarise` table (method x metric); a
    cell without a finite mean (every image skipped) has none."""
    values = {}
    for line in summary.itertuples():
        if not math.isfinite(line.mean):
            continue
        key = f"{line.metric}/{line.method}"
        values.update({key: line.mean, f"{key}/low": line.low, f"{key}/high": line.high,
                       f"{key}/n": line.n})
    return values


def log_run(logger: NoLogger, run_dir: Path, records: pd.DataFrame) -> None:
    """A finished (or interrupted) run's records, summary, tables and figures."""
    logger.log_table("records", records)
    if not logger.enabled or not len(records):
        return
    summary = summarise(with_derived_metrics(records))
    logger.summary(summary_values(summary))
    logger.log_table("summary", summary)
    logger.log_table("summary_table", pivot(summary).rename_axis("method"))
    with tempfile.TemporaryDirectory() as out:
        for figure in draw_run_figures(Path(run_dir), Path(out)):
            logger.log_image(f"figures/{figure.stem}", figure)


def report_html(report: Path) -> str:
    """``REPORT.md`` as one self-contained HTML page for a wandb panel: its text as
    written (the Markdown tables read as text) and its figures inline."""
    parts, text = [], []

    def flush() -> None:
        if text:
            parts.append('<pre style="white-space: pre-wrap">' + html.escape("\n".join(text))
                         + "</pre>")
            text.clear()

    for line in report.read_text().splitlines():
        match = MARKDOWN_IMAGE.match(line.strip())
        figure = report.parent / match["path"] if match else None
        if figure is not None and figure.is_file():
            flush()
            data = base64.b64encode(figure.read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(match["alt"])}" '
                         f'src="data:image/png;base64,{data}">')
        else:
            text.append(line)
    flush()
    return "\n".join(parts)


def push_results(results_dir: Path, project: str = "uni-bench", mode: str | None = None) -> Path:
    """One wandb run (``job_type`` ``report``, in the group of the results' experiment
    runs) with every table under ``results_dir/tables`` as a ``wandb.Table``, every figure
    under ``results_dir/figures`` and ``REPORT.md`` as an HTML panel; its directory."""
    results_dir = Path(results_dir)
    logger = WandbLogger({"results": str(results_dir)}, results_dir, project, mode,
                         name=f"report-{results_dir.resolve().name}",
                         group=shown_path(results_dir), job_type="report")
    for table in sorted((results_dir / "tables").glob("*.csv")):
        logger.log_table(f"tables/{table.stem}", pd.read_csv(table))
    for figure in sorted((results_dir / "figures").glob("*.png")):
        logger.log_image(f"figures/{figure.stem}", figure)
    logger.log_html("REPORT", report_html(results_dir / "REPORT.md"))
    run_dir = Path(logger.run.dir).parent
    logger.finish()
    return run_dir

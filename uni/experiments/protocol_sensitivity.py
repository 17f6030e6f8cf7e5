"""experiment=protocol_sensitivity: each method's rank under every protocol of the metrics
(fill or canvas x correlation or steps x output); each claim's verdict under every
protocol joins the Claims table as a column (:mod:`uni.analysis.protocol_sensitivity`)."""

from __future__ import annotations

import pandas as pd

from uni.analysis.protocol_sensitivity import NAME, verdict_tallies, write_protocol_sensitivity
from uni.analysis.sections import Context, section
from uni.experiments.registry import Experiment, register_experiment
from uni.records import has_records


def report_section(ctx: Context) -> list[str]:
    run_dir = ctx.out / NAME
    written = write_protocol_sensitivity(run_dir, ctx.out) if has_records(run_dir) else []
    if not written:
        return []
    grid_csv, grid_table, grid_figure, verdicts_csv = written
    ctx.verdicts.update(verdict_tallies(pd.read_csv(verdicts_csv, dtype={"model": str})))
    return section("Protocol sensitivity: each method's rank under each protocol", [
        f"The same attributions scored under every protocol of `{NAME}/` "
        f"(`{grid_csv.relative_to(ctx.out)}`).", "", grid_table.read_text(), "",
        f"![ranks]({grid_figure.relative_to(ctx.out)})"])


register_experiment(Experiment(
    name=NAME, title="Protocol sensitivity of the methods' ranking", order=90,
    section=report_section, pooled=False))

"""experiment=stability: the paper's Riemann stability (normalised L1 to the B = 256
reference, method x B) and its curves."""

from __future__ import annotations

import pandas as pd

from uni.analysis.claims import Claim, paired_block
from uni.analysis.figures import line_figure, mean_curves
from uni.analysis.sections import Context, per_model, section, table_block
from uni.analysis.tables import summarise
from uni.experiments.registry import Experiment, register_experiment

BUDGETS = (1, 2, 4, 8)  # "UNI is already stable at very small B"


def claims(records: pd.DataFrame) -> list[Claim]:
    return [Claim(f"Riemann stability, B={b}: UNI's L1 to the reference lowest",
                  f"stability_l1@{b}", records, ("eval.stability.reference",))
            for b in BUDGETS if f"stability_l1@{b}" in set(records["metric"])]


def stability_curves(records: pd.DataFrame, quantity: str = "l1"):
    """Mean (and bootstrap band) of ``stability_<quantity>@B`` against B, per method."""
    part = records[records["metric"].str.fullmatch(rf"stability_{quantity}@\d+")].copy()
    part["budget"] = part["metric"].str.split("@").str[1].astype(int)
    return mean_curves(part, "budget")


def report_section(ctx: Context) -> list[str]:
    out = ctx.out

    def block(r: pd.DataFrame, suffix: str) -> list[str]:
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
        return [*table_block(summary.assign(B=summary["B"].map("B={}".format)), out,
                             f"stability_l1{suffix}", columns="B", metric=budgets[0]),
                "", f"![stability]({figure.relative_to(out)})", "",
                *paired_block(r, budgets, out, suffix)]

    return section("Riemann stability (normalised L1 to the reference, method x B)",
                   [*ctx.run_lines, *per_model(ctx.records, block)])


register_experiment(Experiment(
    name="stability", title="Riemann stability (method x number of steps B)", order=30,
    section=report_section, claims=claims, reproduce=True))

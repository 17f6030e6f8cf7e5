"""experiment=faithfulness: the paper's MuFidelity table (model x method) and deletion /
insertion, with path monotonicity, ROAD, the rank aggregation and the figures of the
attributions its first run kept."""

from __future__ import annotations

import pandas as pd

from uni.analysis.claims import Claim, diagnostic_records, paired_block
from uni.analysis.sections import Context, figure_section, per_model, section, table_block
from uni.analysis.tables import summarise, with_derived_metrics
from uni.analysis.trust_report import ranking_section, road_section
from uni.experiments.registry import Experiment, register_experiment

# why uni, big, adv_baseline and uni_idgi tie at 32/33 on some images (docs/design.md)
MONOTONICITY_ROUNDING = (
    "The points are F_c at x', at each of the path's steps and at x. Under the right rule "
    "the last step is x itself, so the last pair compares F_c(x) from two forward passes; "
    "float rounding there (up to about 1e-6) counts as a decrease, so a path on which F_c never "
    "decreases can read steps / (steps + 1) (32/33 at 32 steps) instead of 1.")


def claims(records: pd.DataFrame) -> list[Claim]:
    return [
        Claim("MuFidelity: UNI highest", "mufidelity", records, ("eval.mufidelity",)),
        Claim("Deletion: UNI lowest", "deletion", records, ("eval.deletion",)),
        Claim("Insertion: UNI highest", "insertion", records, ("eval.insertion",)),
        Claim("Monotone path: UNI's monotonicity highest", "monotonicity",
              diagnostic_records(records, "monotonicity"),
              ("attribution.steps", "attribution.rule")),
    ]


def report_section(ctx: Context) -> list[str]:
    out, records = ctx.out, with_derived_metrics(ctx.records)
    lines = section("Faithfulness: MuFidelity (model x method)", [
        *ctx.run_lines,
        *table_block(summarise(records[records["metric"] == "mufidelity"],
                               rows=["method"], columns="model"),
                     out, "mufidelity", columns="model", metric="mufidelity"),
        "", *per_model(records, lambda r, suffix: paired_block(
            r, ["mufidelity"], out, suffix)),
    ])
    scores = ["deletion", "insertion", "insertion-deletion"]
    lines += section("Deletion / insertion", per_model(records, lambda r, suffix: [
        *table_block(summarise(r[r["metric"].isin(scores)]), out,
                     f"deletion_insertion{suffix}"),
        "", *paired_block(r, scores, out, suffix)]))
    monotonicity = diagnostic_records(records, "monotonicity")
    if len(monotonicity):
        lines += section(
            "Path monotonicity (fraction of path steps where F_c does not decrease)",
            [MONOTONICITY_ROUNDING, "", *per_model(monotonicity, lambda r, suffix: [
                *table_block(summarise(r), out, f"monotonicity{suffix}"),
                "", *paired_block(r, ["monotonicity"], out, suffix)])])
    lines += road_section(records, out, table_block, per_model)
    lines += ranking_section(records, out, per_model)
    return lines + figure_section(ctx.runs[0], out)


register_experiment(Experiment(
    name="faithfulness", title="MuFidelity and deletion / insertion (model x method)",
    order=10, section=report_section, claims=claims, reproduce=True))

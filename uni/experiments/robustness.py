"""experiment=robustness: the paper's robustness table (Spearman and top-k intersection
per attack and budget), read against each method's noise floor."""

from __future__ import annotations

import pandas as pd

from uni.analysis.claims import ATTACK_SCORE, Claim, attack_budgets, paired_block
from uni.analysis.sections import Context, per_model, section, table_block
from uni.analysis.tables import of_metric, summarise
from uni.experiments.registry import Experiment, register_experiment
from uni.metrics import metric_order


def claims(records: pd.DataFrame) -> list[Claim]:
    keys = ("eval.robustness.eps", "eval.robustness.k", "eval.robustness.steps")
    return [Claim(f"Robustness, {match[1]} attack: UNI's {match[2]} highest", match[0],
                  records, keys)
            for match in map(ATTACK_SCORE.match, sorted(records["metric"].unique()))
            if match]


def report_section(ctx: Context) -> list[str]:
    out = ctx.out

    def block(r: pd.DataFrame, suffix: str) -> list[str]:
        scores = metric_order(m for m in r["metric"].unique() if ATTACK_SCORE.match(m))
        floor = of_metric(r, "noise_floor")
        labels = {m: m.replace("_", " ") for m in floor["metric"].unique()}
        note = ["Noise floor: the same scores between two explanations of the "
                "unperturbed image (independent draws or starts), a reference for the "
                "attacks' scores.", ""] if len(floor) else []
        lines = []
        for budget, names in attack_budgets(scores).items():
            achieved = [f"{n.rsplit('_', 1)[0]}_{size}" for n in names
                        for size in ("linf", "l2")]
            part = r[r["metric"].isin([*names, *achieved])]
            name = f"robustness{suffix}" + (f"_{budget}" if budget else "")
            lines += [f"Budget {budget or 'of eval.robustness (default)'}; achieved "
                      "||delta|| per method in the _linf / _l2 columns:", "",
                      *table_block(summarise(part), out, name), ""]
        return [*lines, *table_block(summarise(floor), out, f"noise_floor{suffix}",
                                     labels=labels), "", *note,
                *paired_block(r, scores, out, suffix)]

    return section("Robustness (Spearman and top-k intersection per attack)",
                   [*ctx.run_lines, *per_model(ctx.records, block)])


register_experiment(Experiment(
    name="robustness", title="Robustness of attributions to label-preserving perturbations",
    order=20, section=report_section, claims=claims, reproduce=True))

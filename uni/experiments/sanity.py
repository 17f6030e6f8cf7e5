"""experiment=sanity: the randomisation sanity checks (Adebayo et al. 2018, Sixt et al.'s
random logit): each method's verdict and similarity curves, and the maps per step where
``python -m uni.analysis.sanity_figure`` drew them."""

from __future__ import annotations

from uni.analysis.sections import Context
from uni.analysis.trust_report import sanity_section
from uni.experiments.registry import Experiment, register_experiment


def report_section(ctx: Context) -> list[str]:
    return sanity_section(ctx.out, ctx.out)


register_experiment(Experiment(
    name="sanity", title="Randomisation sanity checks", order=60, section=report_section,
    pooled=False))

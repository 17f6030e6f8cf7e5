"""experiment=uni_ablation: UNI's settings swept on the development split's tuning subset
(``make ablation``), one run per setting under ``<results>/uni_ablation/``; its table,
figures and the selected default (:mod:`uni.analysis.ablation`)."""

from __future__ import annotations

from uni.analysis.ablation import write_ablation
from uni.analysis.sections import Context, section
from uni.experiments.registry import Experiment, register_experiment


def report_section(ctx: Context) -> list[str]:
    lines = write_ablation(ctx.out)
    return section("UNI ablation (development split)", lines) if lines else []


register_experiment(Experiment(
    name="uni_ablation", title="UNI ablation (development split)", order=70,
    section=report_section, pooled=False))

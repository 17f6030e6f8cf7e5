"""experiment=baseline_ablation: the static baselines tuned with UNI's budget and rule
(``make baseline-ablation``), one run per setting under ``<results>/baseline_ablation/``
(:mod:`uni.analysis.baseline_ablation`)."""

from __future__ import annotations

from uni.analysis.baseline_ablation import write_baseline_ablation
from uni.analysis.sections import Context, section
from uni.experiments.registry import Experiment, register_experiment

# the same tuning images, metrics and selection rule as UNI's (not the same cost per image)
TITLE = "Baselines' tuning (the same tuning images and rule as UNI's)"


def report_section(ctx: Context) -> list[str]:
    lines = write_baseline_ablation(ctx.out)
    return section(TITLE, lines) if lines else []


register_experiment(Experiment(
    name="baseline_ablation", title=TITLE,
    order=80, section=report_section, pooled=False))

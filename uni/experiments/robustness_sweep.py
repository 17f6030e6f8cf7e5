"""experiment=robustness_sweep: the robustness attacks at several budgets; its runs'
records are named per budget, so the robustness section and claims take them beside the
default-budget run."""

from uni.experiments.registry import Experiment, register_experiment

register_experiment(Experiment(
    name="robustness_sweep", title="Robustness at several L-inf and L2 budgets", order=21,
    joins="robustness"))

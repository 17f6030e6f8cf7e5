"""experiment=topk_calibration: the top-k attack's surrogate steps swept on the tuning
subset (``make topk-calibration``; ``benchmarks/topk_attack.py select`` picks the
default). The report shows its runs in the generic section of a sweep."""

from uni.experiments.registry import Experiment, register_experiment

register_experiment(Experiment(
    name="topk_calibration", title="Top-k attack: surrogate steps (tuning subset)", order=100))

"""experiment=calibration: UNI's first calibration sweep (eta, eps, PGD steps) on the
development split, read with ``uni tables --by-run``; the report shows its runs in the
generic section of a sweep."""

from uni.experiments.registry import Experiment, register_experiment

register_experiment(Experiment(
    name="calibration", title="Calibration of UNI's defaults (development split)", order=110))

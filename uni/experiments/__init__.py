"""The experiments as a registry, as :data:`uni.methods.METHODS` holds the methods: one
Python spec per experiment, ``uni/experiments/<name>.py`` beside its config
``conf/experiment/<name>.yaml``, registering itself (:func:`register_experiment`).

What belongs here: what the report does with an experiment's records (its claims, its
REPORT section and figures, whether ``make reproduce`` runs it). What does not: how it
runs (the YAML: methods, metrics, data, image count) or how records are analysed in
general (:mod:`uni.analysis`). The image count is the profile's
(``data.limit: ${profile.images.<name>}``) for the paper's experiments, which every
profile sizes; any other experiment sets ``data.limit`` in its own YAML.

Adding an experiment: its YAML and a file here calling :func:`register_experiment`; every
module of this package is imported with it. A run directory of an experiment that is not
registered, or has no section of its own, gets the generic section of a run in the report.
"""

from uni.discovery import import_submodules
from uni.experiments.registry import (
    EXPERIMENTS,
    Experiment,
    experiment_of,
    in_report_order,
    register_experiment,
)

import_submodules(__name__, __path__)  # each spec registers itself

__all__ = ["EXPERIMENTS", "Experiment", "experiment_of", "in_report_order",
           "register_experiment"]

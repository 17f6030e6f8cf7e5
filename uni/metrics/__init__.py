"""Evaluators (docs/design.md §3) and the metric registry.

A metric function is ``(model, x, attributions, target, **options)`` -> one value per image
(a tensor) or several named per-image values (a dict). Metrics that explain again
(:data:`NEEDS_EXPLAINER`) also take ``explainer``, the explained method entry as a
:class:`uni.methods.Explainer`: they never receive a method's name. Metrics with
``output_per_entry`` may set their own ``output`` (``prob`` | ``logit``) in their ``eval``
entry, which wins over the run's ``output`` for that entry's scores only (the methods
still explain the run's ``output``).

Each metric's module registers it (:func:`~uni.metrics._registry.register_metric`, as
timm's ``register_model``) with its metadata (``CATALOG``, :mod:`uni.catalog`); this
package imports every module, so that adding a metric is its module and its config.
:data:`REGISTRY` holds one :class:`MetricSpec` per metric the records can hold, in display
order (the order of table columns): the metrics the runner runs, the one the report
derives (``insertion-deletion``) and the methods' per-image path diagnostics it reports
(``monotonicity``, ``completeness_gap``). Each says which record names it covers (its
:class:`Score` patterns), whether higher or lower values are better, its options with
their defaults and the paper it follows. Analysis of stored records reads direction and
order from :mod:`uni.catalog` (the same metadata, without torch).

A record's name is its metric's (``robustness_topk_spearman``, ``stability_l1@4``) or, for
a metric with one value, its ``eval`` entry's: the metric's name, optionally followed by
``_<suffix>`` or ``__<protocol>`` (protocol-grid entries), or ``[<family>]`` (ImageNet-C
families in the report).
"""

from __future__ import annotations

from uni.catalog import DIRECTIONS, Score
from uni.discovery import import_submodules
from uni.metrics._registry import (
    METRICS,
    NEEDS_EXPLAINER,
    OUTPUT_PER_ENTRY,
    REGISTRY,
    RUNNER_ARGUMENTS,
    MetricSpec,
    check_entry_name,
    check_options,
    direction,
    display_key,
    get_metric,
    lookup,
    lower_is_better,
    metric_order,
    metric_spec,
    register_metric,
)

import_submodules(__name__, __path__)  # each module registers what it defines

# the public metric functions, after their modules (which share their names)
from uni.metrics._public import (  # noqa: E402
    completeness,
    deletion,
    deletion_curve,
    insertion,
    insertion_curve,
    mufidelity,
    noise_floor,
    protocol,
    road,
    robustness,
    robustness_attack,
    sanity,
    stability,
)
from uni.metrics.robustness import AttackOptions  # noqa: E402

__all__ = [
    "DIRECTIONS", "METRICS", "NEEDS_EXPLAINER", "OUTPUT_PER_ENTRY", "REGISTRY",
    "RUNNER_ARGUMENTS", "AttackOptions", "MetricSpec", "Score", "check_entry_name",
    "check_options", "completeness", "deletion", "deletion_curve", "direction", "display_key",
    "get_metric", "insertion", "insertion_curve", "lookup", "lower_is_better", "metric_order",
    "metric_spec", "mufidelity", "noise_floor", "protocol", "register_metric", "road",
    "robustness",
    "robustness_attack", "sanity", "stability",
]

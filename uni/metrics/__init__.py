"""Evaluators (DESIGN §3): one function per metric, ``(model, x, attributions, target,
**options)`` -> one value per image (a tensor) or several named per-image values (a dict).

Metrics in :data:`NEEDS_METHOD` recompute attributions and also take ``method`` (the
explained method's name) and ``method_options`` (its options) as keyword arguments.
Metrics in :data:`OUTPUT_PER_ENTRY` may set their own ``output`` (``prob`` | ``logit``) in
their ``eval`` entry, which wins over the run's ``output`` for that entry's scores only
(the methods still explain the run's ``output``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from uni.errors import ConfigError
from uni.inputs import checked_metric
from uni.metrics import deletion_insertion as _deletion_insertion
from uni.metrics import mufidelity as _mufidelity
from uni.metrics import noise_floor as _noise_floor
from uni.metrics import robustness as _robustness
from uni.metrics import stability as _stability
from uni.models import OUTPUTS

# the public metrics check their inputs (:mod:`uni.inputs`); the modules' own functions,
# which call each other on tensors already checked, do not
deletion = checked_metric(_deletion_insertion.deletion)
deletion_curve = checked_metric(_deletion_insertion.deletion_curve)
insertion = checked_metric(_deletion_insertion.insertion)
insertion_curve = checked_metric(_deletion_insertion.insertion_curve)
mufidelity = checked_metric(_mufidelity.mufidelity)
noise_floor = checked_metric(_noise_floor.noise_floor)
robustness = checked_metric(_robustness.robustness)
robustness_attack = checked_metric(_robustness.robustness_attack)
stability = checked_metric(_stability.stability, reads_attributions=False)

METRICS: dict[str, Callable] = {
    "mufidelity": mufidelity,
    "deletion": deletion,
    "insertion": insertion,
    "robustness": robustness,
    "stability": stability,
    "noise_floor": noise_floor,
}

# metrics that need ``method=<name>, method_options=<dict>`` from the runner
NEEDS_METHOD: frozenset[str] = frozenset({"robustness", "stability", "noise_floor"})


# arguments every metric takes from the runner (not options of ``eval.<name>``)
RUNNER_ARGUMENTS = frozenset({
    "model", "x", "attributions", "target", "output", "batch_size", "image_ids", "seed",
    "score_input", "method", "method_options", "baselines", "cache",
})

# metrics whose ``eval`` entry may override the run's ``output`` (F_c as prob or logit)
OUTPUT_PER_ENTRY: frozenset[str] = frozenset({"mufidelity", "deletion", "insertion"})

# modules whose ``validate_options(**options)`` checks option values without running
_VALIDATORS = {
    "mufidelity": "uni.metrics.mufidelity",
    "deletion": "uni.metrics.deletion_insertion",
    "insertion": "uni.metrics.deletion_insertion",
    "robustness": "uni.metrics.robustness",
    "stability": "uni.metrics.stability",
}


def get_metric(name: str) -> Callable:
    if name not in METRICS:
        raise ConfigError(f"eval={name!r} is not one of {sorted(METRICS)}")
    return METRICS[name]


def check_options(name: str, options: dict) -> None:
    """Fail before any work on an unknown metric, an unknown option name or (where the
    metric has a validator) a value that cannot work, with a one-line message."""
    options = {k: v for k, v in options.items() if k != "metric"}  # the runner's selector
    parameters = inspect.signature(get_metric(name)).parameters
    allowed = sorted(set(parameters) - RUNNER_ARGUMENTS)
    if name in OUTPUT_PER_ENTRY:
        allowed = sorted([*allowed, "output"])
        output = options.pop("output", OUTPUTS[0])
        if output not in OUTPUTS:
            raise ConfigError(f"eval.{name}.output={output!r} is not one of {list(OUTPUTS)}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"eval.{name}: unknown option(s) {unknown}; allowed: {allowed}")
    if name in _VALIDATORS:
        try:
            importlib.import_module(_VALIDATORS[name]).validate_options(**options)
        except ConfigError as err:
            raise ConfigError(f"eval.{name}.{err}") from None


__all__ = [
    "METRICS", "NEEDS_METHOD", "OUTPUT_PER_ENTRY", "RUNNER_ARGUMENTS", "check_options",
    "deletion", "deletion_curve", "get_metric", "insertion", "insertion_curve", "mufidelity",
    "noise_floor", "robustness", "robustness_attack", "stability",
]

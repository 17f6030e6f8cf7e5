"""Evaluators (DESIGN §3): one function per metric, ``(model, x, attributions, target,
**options)`` -> one value per image (a tensor) or several named per-image values (a dict).
"""

from __future__ import annotations

from collections.abc import Callable

from uni.errors import ConfigError
from uni.metrics.mufidelity import mufidelity

METRICS: dict[str, Callable] = {"mufidelity": mufidelity}


def get_metric(name: str) -> Callable:
    if name not in METRICS:
        raise ConfigError(f"eval={name!r} is not one of {sorted(METRICS)}")
    return METRICS[name]


__all__ = ["METRICS", "get_metric", "mufidelity"]

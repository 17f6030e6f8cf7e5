"""uni-bench: UNI (Unlearning-based Neural Interpretations) and its benchmark harness.

Public API: :func:`load_model`, :func:`set_runtime`, :func:`attribute`, one function per
metric in :mod:`uni.metrics`, and for peers' pipelines :func:`baselines` (a method's
baselines, for Captum's ``IntegratedGradients``) and :func:`uni.quantus.explain` (a Quantus
``explain_func``). They are imported on first use, so that the command
line (``uni --help``, a misspelt option) answers without loading torch and timm.
"""

from __future__ import annotations

import importlib

from uni.device_defaults import register

register()  # ${by_device:...} in the configs (conf/config.yaml, batch_sizes)

_EXPORTS = {"attribute": "uni.methods", "baselines": "uni.interop", "load_model": "uni.models",
            "set_runtime": "uni.models"}
_MODULES = ("metrics", "quantus")

__all__ = ["attribute", "baselines", "load_model", "metrics", "quantus", "set_runtime"]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"uni.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uni' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

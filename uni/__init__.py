"""uni-bench: UNI (Unlearning-based Neural Interpretations) and its benchmark harness.

Public API: :func:`load_model`, :func:`set_runtime`, :func:`attribute`, and one function
per metric in :mod:`uni.metrics`. They are imported on first use, so that the command
line (``uni --help``, a misspelt option) answers without loading torch and timm.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"attribute": "uni.methods", "load_model": "uni.models", "set_runtime": "uni.models"}

__all__ = ["attribute", "load_model", "metrics", "set_runtime"]


def __getattr__(name: str):
    if name == "metrics":
        return importlib.import_module("uni.metrics")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uni' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""uni-bench: UNI (Unlearning-based Neural Interpretations) and its benchmark harness.

Public API: :func:`load_model`, :func:`set_runtime`, :func:`attribute`, and one function
per metric in :mod:`uni.metrics`.
"""

from uni import metrics
from uni.methods import attribute
from uni.models import load_model, set_runtime

__all__ = ["attribute", "load_model", "metrics", "set_runtime"]

"""The methods' per-image path diagnostics that the report reads as metrics: how
monotonically ``F_c`` rises along the path (``monotonicity``, the property UNI claims) and
how far the attributions are from summing to ``F_c(x) - F_c(x')`` (``completeness_gap``).
The methods record them (:class:`uni.methods.path.Attribution`); nothing runs them."""

from __future__ import annotations

from uni.metrics._registry import register_metric
from uni.metrics.completeness import SUNDARARAJAN

CHOI = 'Choi, Duplessis & Belongie 2025, "Unlearning-based Neural Interpretations", ICLR'
CATALOG = [  # read by uni.catalog without importing this module
    {"name": "monotonicity", "order": 70, "scores": [["monotonicity", "higher"]],
     "citation": CHOI, "diagnostic": True},
    {"name": "completeness_gap", "order": 80, "scores": [["completeness_gap", "lower"]],
     "citation": SUNDARARAJAN, "diagnostic": True},
]

register_metric("monotonicity", catalog=CATALOG)
register_metric("completeness_gap", catalog=CATALOG)

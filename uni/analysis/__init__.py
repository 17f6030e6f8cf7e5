"""Analysis beside the engine: everything that reads stored records and writes tables,
statistics, claims, figures, REPORT.md and dashboards (``uni tables``, ``uni report``).

What belongs here: code whose input is a run or results directory (``records.parquet``
and the files the run kept beside it) and whose output is something a reader looks at.
It reads the methods' and metrics' metadata (names, direction, order) from the
torch-free catalog, never the registries that run them, and imports neither torch nor
timm at import time (a figure that needs stored tensors imports torch inside the function
that draws it). What does not: anything the run loop needs to produce records (those
modules sit under :mod:`uni.engine`, :mod:`uni.methods`, :mod:`uni.metrics`).

The package imports none of its modules: import the one you use
(``from uni.analysis.report import build_report``).
"""

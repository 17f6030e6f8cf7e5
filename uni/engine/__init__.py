"""The run: a config in, records out (docs/design.md).

What belongs here is what a run does, by job: :mod:`~uni.engine.checks` (every setting
checked before any work, in one line), :mod:`~uni.engine.identity` (what a record's key
is made of: the model, the data, the method entry and its metric entry),
:mod:`~uni.engine.job` (the model, dataset, options and stores resolved once),
:mod:`~uni.engine.loop` (batches -> methods -> metrics -> records, the attribution store,
the figures' data and the cost log) and :mod:`~uni.engine.plan` (a run's cost from one
calibration batch). The engine names no method or metric: what one needs of the run is a
field of its :class:`~uni.methods.MethodSpec` or :class:`~uni.metrics.MetricSpec`.

What does not: reading records back (tables, statistics, claims, the report, figures,
dashboards). That is analysis, beside the engine, never under it: the command line
(:mod:`uni.run`) calls the dashboard after the run returns.
"""

"""The metric registry: :class:`MetricSpec`, :data:`REGISTRY` and :func:`register_metric`,
which each metric's module calls next to its function (as timm's ``register_model``).

A module registers every name it defines with its ``CATALOG`` (:mod:`uni.catalog`): the
record names it covers with their direction, its display order and its citation, read
here from the imported module and by :mod:`uni.catalog` from its source without torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

# a record name's direction and display order are metadata: the catalog's, read from the
# same CATALOG literals the registrations use (tests/test_catalog.py: they agree)
from uni.catalog import (  # noqa: F401  (re-exported by uni.metrics)
    MetricInfo,
    Score,
    direction,
    display_key,
    entry_of,
    find_score,
    lower_is_better,
    metric_order,
)
from uni.errors import ConfigError
from uni.inputs import checked_metric
from uni.models import OUTPUTS

# arguments every metric takes from the runner (not options of ``eval.<name>``)
RUNNER_ARGUMENTS = frozenset({
    "model", "x", "attributions", "target", "output", "batch_size", "image_ids", "seed",
    "score_input", "explainer", "baselines", "cache",
})


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``info``: its :class:`~uni.catalog.MetricInfo` (``name``, ``scores``: the record names
    it covers with their direction, ``citation``: the paper it follows, also in its
    module's docstring, ``derived_from`` and ``combine``, ``diagnostic``; read through
    this spec's properties). ``fn``: the metric function the runner calls, its inputs
    checked (``None``: derived by the report from ``derived_from`` records with
    ``combine``, or a per-image diagnostic column of the methods' records,
    ``diagnostic``); ``record_names``: ``(**options) -> names`` of the values ``fn``
    returns as a dict (``None``: one value, recorded under its ``eval`` entry's name);
    ``validate``: ``(**options)`` raising :class:`ConfigError` for values that cannot
    work; ``output_per_entry``: its ``eval`` entry may set ``output``.

    What the run (:mod:`uni.engine`) asks of a metric, so that it names none:
    ``skip_note``: ``(record, values, i) -> note``, why record ``record``'s value of image
    ``i`` is not finite, from the ``values`` ``fn`` returned (``None``, or no
    ``skip_note``: a numerical fault; robustness: an attack that could not keep the
    label); ``figure_curve``: ``(model, x, attributions, target, **options) -> curves``,
    the per-image curve the run keeps for the figures of its first images (as
    ``<name>_curves``, with this metric's options whether or not the run scores it;
    deletion, insertion); ``compile_conflict``: ``(**options) -> reason``, why an entry
    with these options cannot run on a ``runtime.compile``'d model, or ``None``."""

    info: MetricInfo
    fn: Callable | None = None
    record_names: Callable[..., list[str]] | None = None
    validate: Callable[..., object] | None = None
    output_per_entry: bool = False
    skip_note: Callable[[str, dict, int], str | None] | None = None
    figure_curve: Callable | None = None
    compile_conflict: Callable[..., str | None] | None = None

    name = property(lambda self: self.info.name)
    scores = property(lambda self: self.info.scores)
    citation = property(lambda self: self.info.citation)
    derived_from = property(lambda self: self.info.derived_from)
    combine = property(lambda self: self.info.combine)
    diagnostic = property(lambda self: self.info.diagnostic)

    @property
    def needs_explainer(self) -> bool:
        """Whether it explains again (takes the explained method's ``explainer``)."""
        return self.fn is not None and "explainer" in inspect.signature(self.fn).parameters

    def defaults(self) -> dict[str, object]:
        """The options an ``eval`` entry may set, with their defaults (``output`` too for
        ``output_per_entry``: ``None``, the run's)."""
        if self.fn is None:
            return {}
        parameters = inspect.signature(self.fn).parameters
        options = {k: p.default for k, p in parameters.items()
                   if k not in RUNNER_ARGUMENTS and p.default is not inspect.Parameter.empty}
        return {**options, "output": None} if self.output_per_entry else options

    def records(self, entry: str, options: dict | None = None) -> list[str]:
        """The record names an ``eval`` entry named ``entry`` with ``options`` writes."""
        if self.record_names is None:
            return [entry]
        accepted = inspect.signature(self.record_names).parameters
        return self.record_names(**{k: v for k, v in (options or {}).items() if k in accepted})


# every registered metric, in display order (the order of table columns)
REGISTRY: dict[str, MetricSpec] = {}
# the metrics the runner runs, by name
METRICS: dict[str, Callable] = {}
# metrics that need the explained method's ``explainer`` from the runner
NEEDS_EXPLAINER: set[str] = set()
# metrics whose ``eval`` entry may override the run's ``output`` (F_c as prob or logit)
OUTPUT_PER_ENTRY: set[str] = set()


def register_metric(name: str, fn: Callable | None = None, *, catalog: list[dict],
                    reads_attributions: bool = True, **fields) -> MetricSpec:
    """Register the metric ``name`` with its entry in ``catalog`` (its module's
    ``CATALOG``): ``fn`` (checking its inputs, :func:`uni.inputs.checked_metric`; a metric
    that computes its own attributions, ``reads_attributions=False``, also takes ``None``
    for them) and ``fields`` (:class:`MetricSpec`'s); without ``fn``, a derived metric or
    a diagnostic the report reads."""
    if name in REGISTRY:
        raise ValueError(f"metric {name!r} is registered twice")
    checked = None if fn is None else checked_metric(fn, reads_attributions)
    spec = MetricSpec(MetricInfo.from_entry(entry_of(catalog, name)), checked, **fields)
    ordered = sorted([*REGISTRY.values(), spec], key=lambda s: (s.info.order, s.name))
    REGISTRY.clear()
    REGISTRY.update((s.name, s) for s in ordered)
    if checked is not None:
        METRICS[name] = checked
    if spec.needs_explainer:
        NEEDS_EXPLAINER.add(name)
    if spec.output_per_entry:
        OUTPUT_PER_ENTRY.add(name)
    return spec


def get_metric(name: str) -> Callable:
    if name not in METRICS:
        raise ConfigError(f"eval={name!r} is not one of {sorted(METRICS)}")
    return METRICS[name]


def lookup(name: str) -> tuple[int, int, MetricSpec, Score]:
    """The registration covering the record name ``name`` (:mod:`uni.metrics`' docstring):
    its position in display order, its score's position in it, the spec and the score. A
    name no metric covers is a :class:`ConfigError` naming it."""
    return find_score(name, REGISTRY.values(), "uni.metrics.REGISTRY")


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` covering the record name ``name``."""
    return lookup(name)[2]


def check_options(name: str, options: dict) -> None:
    """Fail before any work on an unknown metric, an unknown option name or (where the
    metric has a validator) a value that cannot work, with a one-line message."""
    options = {k: v for k, v in options.items() if k != "metric"}  # the runner's selector
    get_metric(name)  # an unknown metric fails here
    spec = REGISTRY[name]
    allowed = sorted(spec.defaults())
    if spec.output_per_entry:
        output = options.pop("output", OUTPUTS[0])
        if output not in OUTPUTS:
            raise ConfigError(f"eval.{name}.output={output!r} is not one of {list(OUTPUTS)}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"eval.{name}: unknown option(s) {unknown}; allowed: {allowed}")
    if spec.validate is not None:
        try:
            spec.validate(**options)
        except ConfigError as err:
            raise ConfigError(f"eval.{name}.{err}") from None


def check_entry_name(entry: str, options: dict) -> None:
    """An ``eval`` entry whose metric records one value writes it under the entry's name:
    that name must be covered by the entry's own metric, so that tables and statistics
    read its direction right (``del_logit`` for a deletion entry would not be)."""
    spec = REGISTRY[options["metric"]]
    for record in spec.records(entry, options):
        try:
            covered = metric_spec(record) is spec
        except ConfigError:
            covered = False
        if not covered:
            raise ConfigError(
                f"eval entry {entry!r} (metric {spec.name}) would record values named "
                f"{record!r}, which tables cannot tell from another metric; name the entry "
                f"{spec.name!r} or {spec.name + '_<suffix>'!r}")


"""Evaluators (docs/design.md §3) and the metric registry.

A metric function is ``(model, x, attributions, target, **options)`` -> one value per image
(a tensor) or several named per-image values (a dict). Metrics that explain again
(:data:`NEEDS_EXPLAINER`) also take ``explainer``, the explained method entry as a
:class:`uni.methods.Explainer`: they never receive a method's name. Metrics with
``output_per_entry`` may set their own ``output`` (``prob`` | ``logit``) in their ``eval``
entry, which wins over the run's ``output`` for that entry's scores only (the methods
still explain the run's ``output``).

:data:`REGISTRY` holds one :class:`MetricSpec` per metric the records can hold, in display
order (the order of table columns; as timm's ``register_model`` and Quantus' metric
classes, one registration per metric): the metrics the runner runs, the one the report
derives (``insertion-deletion``) and the methods' per-image path diagnostics it reports
(``monotonicity``, ``completeness_gap``). Each says which record names it covers (its
:class:`Score` patterns), whether higher or lower values are better, its options with
their defaults and the paper it follows. Tables, statistics and claims read direction and
order here (:func:`direction`, :func:`metric_order`).

A record's name is its metric's (``robustness_topk_spearman``, ``stability_l1@4``) or, for
a metric with one value, its ``eval`` entry's: the metric's name, optionally followed by
``_<suffix>`` or ``__<protocol>`` (protocol-grid entries), or ``[<family>]`` (ImageNet-C
families in the report).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from uni.errors import ConfigError
from uni.inputs import checked_metric
from uni.metrics import completeness as _completeness
from uni.metrics import deletion_insertion as _deletion_insertion
from uni.metrics import mufidelity as _mufidelity
from uni.metrics import noise_floor as _noise_floor
from uni.metrics import road as _road
from uni.metrics import robustness as _robustness
from uni.metrics import sanity as _sanity
from uni.metrics import stability as _stability
from uni.metrics.robustness import AttackOptions
from uni.models import OUTPUTS

# the public metrics check their inputs (:mod:`uni.inputs`); the modules' own functions,
# which call each other on tensors already checked, do not
deletion = checked_metric(_deletion_insertion.deletion)
deletion_curve = checked_metric(_deletion_insertion.deletion_curve)
insertion = checked_metric(_deletion_insertion.insertion)
insertion_curve = checked_metric(_deletion_insertion.insertion_curve)
mufidelity = checked_metric(_mufidelity.mufidelity)
noise_floor = checked_metric(_noise_floor.noise_floor)
road = checked_metric(_road.road)
completeness = checked_metric(_completeness.completeness)
sanity = checked_metric(_sanity.sanity)
robustness = checked_metric(_robustness.robustness)
robustness_attack = checked_metric(_robustness.robustness_attack)
stability = checked_metric(_stability.stability, reads_attributions=False)

DIRECTIONS = ("higher", "lower", None)  # None: a side value that ranks nothing

# arguments every metric takes from the runner (not options of ``eval.<name>``)
RUNNER_ARGUMENTS = frozenset({
    "model", "x", "attributions", "target", "output", "batch_size", "image_ids", "seed",
    "score_input", "explainer", "baselines", "cache",
})
# what may follow a metric's name in a record's name (module docstring)
_QUALIFIER = r"(?:_.*|\[.*\])?"


@dataclass(frozen=True)
class Score:
    """One kind of value records hold: ``pattern``, a regular expression for the record
    names (a family such as ``stability_l1@\\d+``), and ``direction``: ``higher`` or
    ``lower`` is better, or ``None`` for a side value (an attack's perturbation size)."""

    pattern: str
    direction: str | None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction={self.direction!r} is not one of {DIRECTIONS}")

    def matches(self, name: str, qualified: bool) -> bool:
        return re.fullmatch(self.pattern + (_QUALIFIER if qualified else ""), name) is not None


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``fn``: the metric function the runner calls (``None``: derived by the report from
    ``derived_from`` records with ``combine``, or a per-image diagnostic column of the
    methods' records, ``diagnostic``); ``scores``: the record names it covers with their
    direction; ``citation``: the paper it follows (also in its module's docstring);
    ``record_names``: ``(**options) -> names`` of the values ``fn`` returns as a dict
    (``None``: one value, recorded under its ``eval`` entry's name); ``validate``:
    ``(**options)`` raising :class:`ConfigError` for values that cannot work;
    ``output_per_entry``: its ``eval`` entry may set ``output``.

    What the run (:mod:`uni.engine`) asks of a metric, so that it names none:
    ``skip_note``: ``(record, values, i) -> note``, why record ``record``'s value of image
    ``i`` is not finite, from the ``values`` ``fn`` returned (``None``, or no
    ``skip_note``: a numerical fault; robustness: an attack that could not keep the
    label); ``figure_curve``: ``(model, x, attributions, target, **options) -> curves``,
    the per-image curve the run keeps for the figures of its first images (as
    ``<name>_curves``, with this metric's options whether or not the run scores it;
    deletion, insertion); ``compile_conflict``: ``(**options) -> reason``, why an entry
    with these options cannot run on a ``runtime.compile``'d model, or ``None``."""

    name: str
    scores: tuple[Score, ...]
    citation: str
    fn: Callable | None = None
    record_names: Callable[..., list[str]] | None = None
    validate: Callable[..., object] | None = None
    output_per_entry: bool = False
    derived_from: tuple[str, ...] = ()
    combine: Callable | None = None
    diagnostic: bool = False
    skip_note: Callable[[str, dict, int], str | None] | None = None
    figure_curve: Callable | None = None
    compile_conflict: Callable[..., str | None] | None = None

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


def _difference(minuend, subtrahend):
    return minuend - subtrahend


PETSIUK = ('Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of '
           'Black-box Models", BMVC')
ADEBAYO = ('Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for Saliency '
           'Maps", NeurIPS; the random-logit test of Sixt, Granz & Landgraf 2020, "When '
           'Explanations Lie", ICML')
GHORBANI = ('Ghorbani, Abid & Zou 2019, "Interpretation of Neural Networks Is Fragile", '
            "AAAI")
SUNDARARAJAN = ('Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks", '
                "ICML")
CHOI = ('Choi, Duplessis & Belongie 2025, "Unlearning-based Neural Interpretations", ICLR')
RONG = ('Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent and Efficient '
        'Evaluation Strategy for Attribution Methods", ICML')

REGISTRY: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec(
        "mufidelity", (Score("mufidelity", "higher"),),
        'Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model '
        'Explanations", IJCAI', mufidelity, validate=_mufidelity.validate_options,
        output_per_entry=True,
    ),
    MetricSpec("deletion", (Score("deletion", "lower"),), PETSIUK, deletion,
               validate=_deletion_insertion.validate_options, output_per_entry=True,
               figure_curve=deletion_curve),
    MetricSpec("insertion", (Score("insertion", "higher"),), PETSIUK, insertion,
               validate=_deletion_insertion.validate_options, output_per_entry=True,
               figure_curve=insertion_curve),
    MetricSpec("insertion-deletion", (Score("insertion-deletion", "higher"),), PETSIUK,
               derived_from=("insertion", "deletion"), combine=_difference),
    MetricSpec(
        "road",
        (Score("road_morf", "lower"), Score("road_lerf", "higher"),
         Score("road_combined", "higher"), Score("road_consistency", "higher")),
        RONG, road, record_names=_road.metric_names,
        validate=_road.validate_options, output_per_entry=True,
    ),
    MetricSpec("completeness", (Score("completeness", "lower"),), SUNDARARAJAN, completeness,
               output_per_entry=True),
    MetricSpec("monotonicity", (Score("monotonicity", "higher"),), CHOI, diagnostic=True),
    MetricSpec("completeness_gap", (Score("completeness_gap", "lower"),), SUNDARARAJAN,
               diagnostic=True),
    MetricSpec(
        "robustness",
        (Score(r"robustness_\w+_spearman", "higher"),
         Score(r"robustness_\w+_intersection", "higher"),
         Score(r"robustness_\w+_linf", None),
         Score(r"robustness_\w+_l2", None),
         Score(r"robustness_\w+_skipped", "lower")),
        GHORBANI, robustness, record_names=_robustness.metric_names,
        validate=_robustness.validate_options, skip_note=_robustness.skip_note,
        compile_conflict=_robustness.compile_conflict,
    ),
    MetricSpec(
        "noise_floor",
        (Score("noise_floor_spearman", "higher"), Score("noise_floor_intersection", "higher")),
        f"this benchmark's reference for robustness scores ({GHORBANI})", noise_floor,
        record_names=_noise_floor.metric_names,
    ),
    MetricSpec(
        "stability",
        (Score(r"stability_l1@\d+", "lower"), Score(r"stability_spearman@\d+", "higher"),
         Score(r"stability_gap@\d+", "lower")),
        f"the claim of {CHOI}; Riemann sums of {SUNDARARAJAN}", stability,
        record_names=_stability.metric_names, validate=_stability.validate_options,
    ),
    # similarity to the maps of randomised models: lower is better (the map depends on them)
    MetricSpec(
        "sanity",
        (Score(r"sanity_(cascading|independent)_(spearman_abs|spearman|ssim|topk)@\d+",
               "lower"),
         Score(r"sanity_random_logit_(spearman_abs|spearman|ssim|topk)", "lower")),
        ADEBAYO, sanity, record_names=_sanity.metric_names,
        validate=_sanity.validate_options,
    ),
)}

# the metrics the runner runs, by name
METRICS: dict[str, Callable] = {n: s.fn for n, s in REGISTRY.items() if s.fn is not None}
# metrics that need the explained method's ``explainer`` from the runner
NEEDS_EXPLAINER: frozenset[str] = frozenset(n for n, s in REGISTRY.items() if s.needs_explainer)
# metrics whose ``eval`` entry may override the run's ``output`` (F_c as prob or logit)
OUTPUT_PER_ENTRY: frozenset[str] = frozenset(
    n for n, s in REGISTRY.items() if s.output_per_entry)


def get_metric(name: str) -> Callable:
    if name not in METRICS:
        raise ConfigError(f"eval={name!r} is not one of {sorted(METRICS)}")
    return METRICS[name]


def _scores() -> Iterable[tuple[int, int, MetricSpec, Score]]:
    for i, spec in enumerate(REGISTRY.values()):
        for j, score in enumerate(spec.scores):
            yield i, j, spec, score


def lookup(name: str) -> tuple[int, int, MetricSpec, Score]:
    """The registration covering the record name ``name`` (module docstring): its
    position in display order, its score's position in it, the spec and the score. A
    name no metric covers is a :class:`ConfigError` naming it."""
    name = str(name)
    for qualified in (False, True):  # an exact name wins over a qualified one
        for found in _scores():
            if found[3].matches(name, qualified):
                return found
    raise ConfigError(
        f"metric {name!r} is not registered in uni.metrics.REGISTRY (a record's metric is "
        f"a registered name, optionally with _<suffix>, __<protocol> or [<family>]; "
        f"registered: {', '.join(REGISTRY)})")


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` covering the record name ``name``."""
    return lookup(name)[2]


def direction(name: str) -> str | None:
    """``higher`` or ``lower`` (which values of the record name ``name`` are better), or
    ``None`` for a side value."""
    return lookup(name)[3].direction


def lower_is_better(name: str) -> bool:
    return direction(name) == "lower"


def _natural(text: str) -> tuple:
    """Numbers in ``text`` compared as numbers (``@2`` before ``@16``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def display_key(name: str) -> tuple:
    """Sort key of a record name: its metric's registration, its score within it, then
    the name itself (numbers numerically)."""
    i, j, _, _ = lookup(name)
    return i, j, _natural(str(name))


def metric_order(names: Iterable[str]) -> list[str]:
    """Record names (distinct) in display order (:func:`display_key`)."""
    return sorted(dict.fromkeys(names), key=display_key)


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


__all__ = [
    "METRICS", "NEEDS_EXPLAINER", "OUTPUT_PER_ENTRY", "REGISTRY", "RUNNER_ARGUMENTS",
    "AttackOptions", "MetricSpec", "Score", "check_entry_name", "check_options", "completeness",
    "deletion",
    "deletion_curve", "direction", "display_key", "get_metric", "insertion",
    "insertion_curve", "lookup", "lower_is_better", "metric_order", "metric_spec",
    "mufidelity", "noise_floor", "road", "robustness", "robustness_attack", "sanity", "stability",
]

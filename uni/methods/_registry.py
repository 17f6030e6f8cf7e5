"""The method registry: :class:`MethodSpec`, :data:`METHODS` and :func:`register_method`,
which each method's module calls next to its function (as timm's ``register_model``).

A module registers every name it defines with its ``CATALOG`` (:mod:`uni.catalog`): the
name's display order and group, read here from the imported module and by
:mod:`uni.catalog` from its source without torch. The options a method takes are checked
against :data:`OPTION_LIMITS`, to which the module that defines an option's values adds
them (:func:`register_options`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from uni.catalog import MethodInfo, entry_of, ordered_names
from uni.contract import Setting, from_annotation, keyword_parameters, merge
from uni.errors import ConfigError

# what :func:`uni.methods.explain` passes to every method itself: no option of a method entry
RUNNER_ARGUMENTS = frozenset({"model", "x", "target", "output", "image_ids", "seed", "draw"})
# method options that belong to the path integral, not to the baselines
PATH_OPTIONS = frozenset({"steps", "rule", "internal_batch_size", "output", "idgi"})

# ranges and allowed values of method options (their types are the annotations of the
# parameters that take them), added by the modules that define them
OPTION_LIMITS: dict[str, Setting] = {}

Flag = bool | Callable[[dict], bool]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its metadata, its function and what a restart of it changes.

    ``info``: its :class:`~uni.catalog.MethodInfo` (name, display order, group);
    ``random``: it draws random numbers (a noise baseline, baselines drawn from data);
    ``restart_options``: options that make an independent restart of an optimisation
    inside it (UNI's baseline search from a random start in the ball);
    ``straight_line``: its attributions are a Riemann sum along the straight line from
    its baselines (what the Riemann stability metric and the robustness top-k surrogate
    vary); DeepLIFT, Blur IG and Guided IG are not. ``random`` and ``straight_line`` may
    depend on the method's options (a callable of them; read them with :meth:`is_random`
    and :meth:`is_straight_line`). ``baselines``: ``(model, x, target, *, image_ids,
    seed, **options) -> (baselines, draws)``, every straight-line baseline the method
    integrates from (draw-major; ``explain(...).baselines`` holds only the first draw),
    without its path integral; ``options`` are the method's, less :data:`PATH_OPTIONS`.
    A method that can be a straight line has it.

    The options a ``method.<name>`` entry may set are the keyword parameters of ``fn`` and
    of the functions in ``option_functions`` (e.g. a baseline's ``sigma``), less
    :data:`RUNNER_ARGUMENTS` and ``excluded``; with ``baseline_options`` (the static
    baselines by name), the ``baseline`` option picks one whose options it also takes
    (:meth:`option_settings`).

    ``version``: raised when a fix changes the method's values for the same options (2:
    each image's computation made its own, batch invariance); from 2 on it enters the
    method's record key, so records made before the fix are recomputed, never reused,
    and the keys of methods at version 1 stay as they were.

    What the run (:mod:`uni.engine`) asks of a method, so that it names none:
    ``compiles``: it works on a ``runtime.compile``'d model (DeepLIFT does not: compiled
    modules ignore the hooks it adds); ``split_options``: ``(options, data, data_config)
    -> options``, the options as the method runs them on the run's data split (``data``:
    the dataset's options, ``data_config``: the model's preprocessing; Expected
    Gradients' ``reference: split`` becomes the split's images), the config and the
    record keys keeping them as written; ``keyed_options``: ``(options, methods) ->
    options``, the options the entry's records are keyed on given every method entry of
    the run (a control's ``distance: uni`` becomes the run's UNI entry's options);
    ``stored_options``: ``(options, stored) -> options``, the options completed from
    another entry's stored explanations, ``stored(entry)`` giving that entry's stored
    tensors of every image to explain, or ``None`` unless all are stored (a control
    reads UNI's distances instead of running UNI's search again).
    """

    info: MethodInfo
    fn: Callable
    random: Flag = False
    restart_options: dict = field(default_factory=dict)
    straight_line: Flag = True
    baselines: Callable | None = None
    option_functions: tuple[Callable, ...] = ()
    excluded: frozenset[str] = frozenset()
    baseline_options: Mapping[str, Callable] | None = None
    version: int = 1
    compiles: bool = True
    split_options: Callable[[dict, dict, dict], dict] | None = None
    keyed_options: Callable[[dict, dict], dict] | None = None
    stored_options: Callable[[dict, Callable], dict] | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def option_settings(self, options: dict | None = None) -> dict[str, Setting]:
        """The option names a method entry with ``options`` may set, each with its type
        and range (:data:`OPTION_LIMITS`)."""
        functions = [self.fn, *self.option_functions]
        if self.baseline_options is not None:
            default = keyword_parameters(self.fn)["baseline"].default
            baseline = (options or {}).get("baseline", default)
            if isinstance(baseline, str) and baseline in self.baseline_options:
                functions.append(self.baseline_options[baseline])
        parameters = {}
        for fn in functions:
            parameters.update(keyword_parameters(fn))
        return {
            name: merge(from_annotation(p.annotation), OPTION_LIMITS.get(name))
            for name, p in parameters.items()
            if name not in RUNNER_ARGUMENTS | self.excluded
        }

    @staticmethod
    def _flag(flag: Flag, options: dict | None) -> bool:
        return bool(flag(dict(options or {})) if callable(flag) else flag)

    def is_random(self, options: dict | None = None) -> bool:
        return self._flag(self.random, options)

    def is_straight_line(self, options: dict | None = None) -> bool:
        return self._flag(self.straight_line, options)

    def restarts(self, options: dict | None = None) -> bool:
        """Whether two explanations of one image with these options can differ
        (independent draws or starts); ``False``: a restart gives the very same
        attributions."""
        return self.is_random(options) or bool(self.restart_options)


# every registered method, in display order (tables and figures list methods in it)
METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, fn: Callable, *, catalog: list[dict] | None = None,
                    **fields) -> MethodSpec:
    """Register ``fn`` as the method ``name`` (``fields``: :class:`MethodSpec`'s), with its
    entry in ``catalog`` (its module's ``CATALOG``); a user's method may leave ``catalog``
    out: it is then an attribution method listed after the catalogued ones."""
    if name in METHODS:
        raise ValueError(f"method {name!r} is registered twice")
    info = MethodInfo.from_entry(entry_of(catalog, name)) if catalog is not None \
        else MethodInfo(name)
    spec = MethodSpec(info, fn, **fields)
    ordered = sorted([*METHODS.values(), spec], key=lambda s: (s.info.order, s.name))
    METHODS.clear()
    METHODS.update((s.name, s) for s in ordered)
    return spec


def register_options(**limits: Setting) -> None:
    """Add the ranges or allowed values of method options (:data:`OPTION_LIMITS`)."""
    clash = {k for k, v in limits.items() if OPTION_LIMITS.get(k, v) != v}
    if clash:
        raise ValueError(f"method option(s) {sorted(clash)} are limited twice, differently")
    OPTION_LIMITS.update(limits)


def not_idgi(options: dict) -> bool:
    """A straight-line Riemann sum unless IDGI projects it (``idgi: true``)."""
    return not options.get("idgi", False)


def method_order(names) -> list[str]:
    """``names`` (method entries) in display order: the registered methods in
    :data:`METHODS`' order, then any other name (e.g. a ``kind`` variant) alphabetically."""
    return ordered_names(names, METHODS)


def get_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is not one of {sorted(METHODS)}")
    return METHODS[name]


def get_method(name: str) -> Callable:
    return get_spec(name).fn


def check_method_options(name: str, options: dict) -> None:
    """Fail before any work on a ``method.<name>`` entry that cannot work: an unknown
    method (its ``kind``, else ``name``), an unknown option name, or a value of the wrong
    type or out of range; one line naming the setting and what is allowed."""
    kind = options.get("kind", name)
    if kind not in METHODS:
        key = f"method.{name}.kind" if "kind" in options else "method"
        raise ConfigError(f"{key}={kind!r} is not one of {sorted(METHODS)}")
    settings = METHODS[kind].option_settings(options)
    unknown = sorted(set(options) - set(settings) - {"kind"})
    if unknown:
        raise ConfigError(
            f"method.{name}: unknown option(s) {unknown}; allowed: {sorted([*settings, 'kind'])}"
        )
    for option, value in options.items():
        if option in settings:
            settings[option].check(f"method.{name}.{option}", value)
    if options.get("rule") == "trapezoid" and options.get("steps", 2) < 2:
        raise ConfigError(f"method.{name}: rule=trapezoid needs steps >= 2")

"""Attribution methods, created by name; all share one signature (as in Captum).

``method(model, x, target, *, output, internal_batch_size, image_ids, seed, **options)``
returns an :class:`~uni.methods.path.Attribution`. The names are the configs in
``conf/method/``: ``ig_<baseline>`` (IG from a static baseline), ``deeplift``,
``blur_ig``, ``guided_ig``, ``expected_gradients``, ``uni``, and what tests UNI
(docs/methods.md): ``uni_paper``, the gradient maps, ``agi``, ``big`` and the controls at
UNI's distance; :data:`METHODS` registers them in display order (tables and figures list
methods in it). Every path method takes ``idgi`` (:mod:`uni.methods.idgi`).

Metrics that explain again (robustness, stability, noise floor) receive an
:class:`Explainer`: one method entry bound to a model, its options and the explained
output, which explains, gives the method's straight-line baselines and says what varies
between restarts, so that no metric looks a method up by name (as Captum's
``sensitivity_max`` takes an ``explanation_func``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from uni import rng
from uni.contract import Setting, bounded, from_annotation, keyword_parameters, merge, one_of
from uni.errors import ConfigError
from uni.inputs import check_images, check_model_output, check_target, eval_mode
from uni.methods import expected_gradients as _expected_gradients
from uni.methods.agi import agi
from uni.methods.baselines import BASELINES, RANDOM_BASELINES
from uni.methods.big import big, big_baselines, boundary_baseline
from uni.methods.blur_ig import blur_ig
from uni.methods.controls import (
    CONTROL_EXCLUDED,
    CONTROLS,
    control,
    control_baselines,
    stored_distances,
    with_uni_distance,
)
from uni.methods.controls import baselines_of as control_baselines_of
from uni.methods.deeplift import deeplift
from uni.methods.expected_gradients import POINTS
from uni.methods.gradient import WHICH as GRADIENT_MAPS
from uni.methods.gradient import gradient_map
from uni.methods.guided_ig import guided_ig
from uni.methods.ig import ig, static_baselines
from uni.methods.path import RULES, Attribution, integrated_gradients, riemann_rule
from uni.methods.trivial import PATTERNS, RANDOM_PATTERNS, trivial
from uni.methods.unlearning import (
    KL_DIRECTIONS,
    NORMS,
    PAPER,
    RETURNS,
    SCHEDULES,
    UNLEARN_MODES,
    UNLEARN_STEPS,
    UPDATES,
    uni,
    uni_baseline,
    uni_baselines,
)
from uni.models import OUTPUTS

# what :func:`explain` passes to every method itself: no option of a method entry
RUNNER_ARGUMENTS = frozenset({"model", "x", "target", "output", "image_ids", "seed", "draw"})

# ranges and allowed values of method options (their types are the annotations of the
# parameters that take them)
OPTION_LIMITS: dict[str, Setting] = {
    "steps": bounded(1),
    "internal_batch_size": bounded(1),
    "samples": bounded(1),
    "sigma": bounded(0),
    "rule": one_of(RULES),
    "baseline": one_of(BASELINES),
    "eta": bounded(0, low_open=True),
    "eps": bounded(0),
    "norm": one_of(NORMS),
    "pgd_steps": bounded(0),
    "pgd_step_size": bounded(0, low_open=True),
    "pgd_update": one_of(UPDATES),
    "pgd_schedule": one_of(SCHEDULES),
    "kl_tolerance": bounded(0),
    "kl_direction": one_of(KL_DIRECTIONS),
    "unlearn_step": one_of(UNLEARN_STEPS),
    "unlearn_steps": bounded(1),
    "unlearn_until": bounded(0, 1, low_open=True),
    "unlearn_mode": one_of(UNLEARN_MODES),
    "unlearn_chunk": bounded(1),
    "max_sigma": bounded(0, low_open=True),
    "grad_step": bounded(0, low_open=True),
    "fraction": bounded(0, 1, low_open=True),
    "max_dist": bounded(0, 1, low_open=True),
    "points": one_of(POINTS),
    "reference_size": bounded(1),
    "pgd_return": one_of(RETURNS),
    "classes": bounded(1),
    "attack_steps": bounded(1),
    "refine": bounded(0),
}

Flag = bool | Callable[[dict], bool]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function and what a restart of it changes.

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
    :data:`RUNNER_ARGUMENTS` and ``excluded``; with ``baseline_option``, the ``baseline``
    option picks a static baseline whose options it also takes (:meth:`option_settings`).

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

    fn: Callable[..., Attribution]
    random: Flag = False
    restart_options: dict = field(default_factory=dict)
    straight_line: Flag = True
    baselines: Callable | None = None
    option_functions: tuple[Callable, ...] = ()
    excluded: frozenset[str] = frozenset()
    baseline_option: bool = False
    version: int = 1
    compiles: bool = True
    split_options: Callable[[dict, dict, dict], dict] | None = None
    keyed_options: Callable[[dict, dict], dict] | None = None
    stored_options: Callable[[dict, Callable], dict] | None = None

    def option_settings(self, options: dict | None = None) -> dict[str, Setting]:
        """The option names a method entry with ``options`` may set, each with its type
        and range (:data:`OPTION_LIMITS`)."""
        functions = [self.fn, *self.option_functions]
        if self.baseline_option:
            default = keyword_parameters(self.fn)["baseline"].default
            baseline = (options or {}).get("baseline", default)
            if isinstance(baseline, str) and baseline in BASELINES:
                functions.append(BASELINES[baseline])
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


def _noise_baseline(options: dict) -> bool:
    return options.get("baseline", "black") in RANDOM_BASELINES


def _not_idgi(options: dict) -> bool:
    """A straight-line Riemann sum unless IDGI projects it (``idgi: true``)."""
    return not options.get("idgi", False)


METHODS: dict[str, MethodSpec] = {
    **{f"ig_{b}": MethodSpec(
        functools.partial(ig, baseline=b), random=b in RANDOM_BASELINES,
        straight_line=_not_idgi,
        baselines=functools.partial(static_baselines, baseline=b),
        option_functions=(BASELINES[b],),
        # one draw of a fixed baseline is every draw
        excluded=frozenset() if b in RANDOM_BASELINES else frozenset({"samples"}),
    ) for b in BASELINES},
    "deeplift": MethodSpec(deeplift, straight_line=False, baseline_option=True,
                           compiles=False),
    # paths that are not straight lines: no Riemann budget to vary, no straight-line surrogate
    "blur_ig": MethodSpec(blur_ig, straight_line=False),
    "guided_ig": MethodSpec(guided_ig, random=_noise_baseline, straight_line=False,
                            baseline_option=True, version=2),
    # straight lines from baselines drawn from data (with points=riemann)
    "expected_gradients": MethodSpec(
        _expected_gradients.expected_gradients, random=True,
        straight_line=_expected_gradients.is_straight_line,
        baselines=_expected_gradients.method_baselines,
        split_options=_expected_gradients.with_reference_split,
    ),
    # what drives UNI (issue 31): gradient maps, the closest rivals, controls at UNI's
    # distance and the paper's Algorithm 1 as written (docs/methods.md)
    **{m: MethodSpec(functools.partial(gradient_map, which=m), straight_line=False)
       for m in GRADIENT_MAPS},
    "agi": MethodSpec(agi, straight_line=False),
    "big": MethodSpec(big, straight_line=_not_idgi, baselines=big_baselines,
                      option_functions=(boundary_baseline,)),
    **{c: MethodSpec(functools.partial(control, control=c), straight_line=_not_idgi,
                     random=c == "random_ball",
                     baselines=functools.partial(control_baselines_of, control=c),
                     option_functions=(control_baselines,),
                     excluded=CONTROL_EXCLUDED[c], keyed_options=with_uni_distance,
                     stored_options=stored_distances)
       for c in CONTROLS},
    "uni_paper": MethodSpec(functools.partial(uni, **PAPER),
                            restart_options={"random_start": True},
                            baselines=functools.partial(uni_baselines, **PAPER),
                            straight_line=_not_idgi, option_functions=(uni_baseline,)),
    # the paper's method last, as in its tables
    "uni": MethodSpec(uni, restart_options={"random_start": True}, baselines=uni_baselines,
                      straight_line=_not_idgi, option_functions=(uni_baseline,), version=2),
    # floors: maps that read nothing of the model (uni.methods.trivial)
    **{f"trivial_{p}": MethodSpec(
        functools.partial(trivial, pattern=p), random=p in RANDOM_PATTERNS,
        straight_line=False, excluded=frozenset({"internal_batch_size"}),
    ) for p in PATTERNS},
}
# the floor methods, listed apart from the attribution methods in tables and claims
TRIVIAL_METHODS = frozenset(f"trivial_{p}" for p in PATTERNS)

# method options that belong to the path integral, not to the baselines
PATH_OPTIONS = frozenset({"steps", "rule", "internal_batch_size", "output", "idgi"})


def method_order(names) -> list[str]:
    """``names`` (method entries) in display order: the registered methods in
    :data:`METHODS`' order, then any other name (e.g. a ``kind`` variant) alphabetically."""
    names = list(dict.fromkeys(names))
    known = [m for m in METHODS if m in names]
    return known + sorted(m for m in names if m not in known)


def get_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is not one of {sorted(METHODS)}")
    return METHODS[name]


def get_method(name: str) -> Callable[..., Attribution]:
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


def restart_seed(seed: int, restart: int) -> int:
    """The seed of restart ``restart`` (0: ``seed`` itself): independent draws."""
    return seed if restart == 0 else rng.stable_seed(seed, "", f"restart/{restart}")


def resolve_target(model: torch.nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Class indices as a long tensor on ``x``'s device; ``None`` means the prediction;
    indices that are not one per image, or not classes of the model, are an
    :class:`~uni.errors.InputError`."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(-1)
    return check_target(model, x, target)


def explain(
    model: torch.nn.Module,
    x: torch.Tensor,
    target=None,
    method: str = "uni",
    *,
    output: str = "prob",
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    internal_batch_size: int = 4,
    restart: int = 0,
    **options,
) -> Attribution:
    """Attributions, baselines and per-image diagnostics of ``method`` for a batch.

    ``restart > 0``: an independent restart (new random draws, and the method's
    ``restart_options``, e.g. a random start for UNI's search), for noise floors."""
    spec = get_spec(method)
    fn = spec.fn
    if restart:
        seed = restart_seed(seed, restart)
        options = {**options, **spec.restart_options}
    if output not in OUTPUTS:
        raise ConfigError(f"output={output!r} is not one of {list(OUTPUTS)}")
    if x.dim() != 4:
        raise ConfigError(f"x must be a batch (N, C, H, W); got shape {tuple(x.shape)}")
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    if len(image_ids) != x.shape[0]:
        raise ConfigError(f"got {len(image_ids)} image_ids for a batch of {x.shape[0]} images")
    with eval_mode(model):
        target = resolve_target(model, x, target)
        return fn(
            model, x, target, output=output, image_ids=image_ids, seed=seed,
            internal_batch_size=internal_batch_size, **options,
        )


@dataclass(frozen=True, eq=False)
class Explainer:
    """One method entry bound to a model, its options and the explained ``output``: the
    explanation callable metrics that explain again receive, so they never look a method
    up by name or read its options. ``method``: the registered method (its ``kind``);
    ``options``: the entry's options (``kind`` removed), as :func:`explain` takes them.

    ``explainer(x, target, image_ids=..., seed=..., restart=0)`` explains a batch;
    :meth:`baselines` gives every straight-line baseline without the path integral;
    :attr:`straight_line` and :attr:`restarts` say what the method is with these options;
    :meth:`option` reads an option with the method's own default."""

    model: torch.nn.Module
    method: str
    options: dict = field(default_factory=dict)
    output: str = "prob"

    def __post_init__(self):
        get_spec(self.method)  # an unknown method fails here, in one line

    @property
    def spec(self) -> MethodSpec:
        return get_spec(self.method)

    def __call__(self, x: torch.Tensor, target, *, image_ids: Sequence[str] | None = None,
                 seed: int = 0, restart: int = 0) -> Attribution:
        return explain(self.model, x, target, self.method, output=self.output,
                       image_ids=image_ids, seed=seed, restart=restart, **self.options)

    def option(self, name: str):
        """The option ``name`` as the method runs it: the entry's value, else the default
        of the method's parameter (``None`` when the method has no such option)."""
        if name in self.options:
            return self.options[name]
        parameter = keyword_parameters(self.spec.fn).get(name)
        return None if parameter is None else parameter.default

    @property
    def straight_line(self) -> bool:
        """Whether the attributions are a Riemann sum along straight lines from
        :meth:`baselines` (``option("steps")`` points of ``option("rule")``)."""
        return self.spec.is_straight_line(self.options)

    @property
    def restarts(self) -> bool:
        """Whether an independent restart (``restart=1``) can give other attributions."""
        return self.spec.restarts(self.options)

    def baselines(self, x: torch.Tensor, target: torch.Tensor, *,
                  image_ids: Sequence[str] | None = None, seed: int = 0,
                  first_draw: torch.Tensor | None = None) -> tuple[torch.Tensor | None, int]:
        """``(baselines, draws)``: every straight-line baseline of ``x``, shaped ``(draws *
        N, C, H, W)`` (draw-major, as :func:`uni.methods.ig.ig` stacks them), detached;
        ``(None, 1)`` for a method without a straight-line path with these options.
        ``first_draw``: the baselines :meth:`__call__` returned, reused when the method
        draws once (UNI's search is not run again)."""
        if not self.straight_line:
            return None, 1
        if first_draw is not None and (self.option("samples") or 1) == 1:
            return first_draw.detach(), 1
        image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
        rest = {k: v for k, v in self.options.items() if k not in PATH_OPTIONS}
        with eval_mode(self.model):
            baselines, draws = self.spec.baselines(self.model, x, target,
                                                   image_ids=image_ids, seed=seed, **rest)
        return baselines.detach(), draws


def attribute(
    model: torch.nn.Module,
    x: torch.Tensor,
    target=None,
    method: str = "uni",
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    return_baseline: bool = False,
    **options,
):
    """Attributions shaped like ``x`` (and the baselines, with ``return_baseline=True``).

    ``x``: a float batch in [0, 1] (checked: :mod:`uni.inputs`; the model is explained in
    eval mode and left as it was); ``target``: class indices
    (``None``: the prediction);
    ``output``: explain the softmax probability (``prob``) or the logit (``logit``);
    ``rule``: ``left|right|middle|trapezoid`` (Blur IG and Guided IG take only ``right``:
    their paths place their own points). Other options go to the method, e.g. ``eta``,
    ``eps``, ``pgd_steps`` for UNI, ``sigma`` for ``ig_blur``, ``max_sigma`` for
    ``blur_ig``, ``fraction`` for ``guided_ig``, ``samples`` and ``reference`` (a tensor
    of images) for ``expected_gradients``, ``idgi=True`` for any path method, ``distance``
    for the controls (docs/methods.md). Methods without a Riemann sum (``deeplift``, the
    gradient maps, ``agi``) ignore ``steps`` and ``rule``.
    """
    settings = get_spec(method).option_settings(options)  # DeepLIFT, trivial maps: no path
    options.update({k: v for k, v in (("steps", steps), ("rule", rule)) if k in settings})
    # the checks of a ``method.<name>`` entry on the command line (a misspelt option, eps=nan)
    check_method_options(method, {k: v for k, v in options.items()
                                  if k not in RUNNER_ARGUMENTS})
    x = check_images(model, x)
    check_model_output(model, x)
    result = explain(model, x, target, method, output=output, **options)
    return (result.attributions, result.baselines) if return_baseline else result.attributions


__all__ = [
    "METHODS", "OPTION_LIMITS", "PATH_OPTIONS", "RUNNER_ARGUMENTS", "TRIVIAL_METHODS",
    "Attribution", "Explainer", "MethodSpec", "attribute", "check_method_options", "explain",
    "get_method", "get_spec", "method_order",
    "integrated_gradients", "resolve_target", "restart_seed", "riemann_rule", "uni_baseline",
]

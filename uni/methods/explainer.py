"""Explaining with a registered method: :func:`explain` (a batch, with the runner's
arguments), :func:`attribute` (the library call, checked) and :class:`Explainer` (one
method entry bound to a model, what metrics that explain again receive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from uni import rng
from uni.config_dir import method_entry
from uni.contract import keyword_parameters
from uni.errors import ConfigError
from uni.inputs import check_images, check_model_output, check_target, eval_mode
from uni.methods._registry import (
    METHODS,
    PATH_OPTIONS,
    RUNNER_ARGUMENTS,
    MethodSpec,
    check_method_options,
    get_spec,
)
from uni.methods.path import Attribution
from uni.models import OUTPUTS


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
    for the controls (docs/methods.md). ``method`` may also name a ``conf/method/`` entry
    of another method (``uni_idgi``, ``ig_blur_tuned``): that method with the entry's
    options, which ``options`` override. Methods without a Riemann sum (``deeplift``, the
    gradient maps, ``agi``) ignore ``steps`` and ``rule``.
    """
    entry = method_entry(method) if method not in METHODS else None
    if entry:  # a conf/method entry of another method, as `method=<entry>` runs it
        method, options = entry[0], {**entry[1], **options}
    settings = get_spec(method).option_settings(options)  # DeepLIFT, trivial maps: no path
    options.update({k: v for k, v in (("steps", steps), ("rule", rule)) if k in settings})
    # the checks of a ``method.<name>`` entry on the command line (a misspelt option, eps=nan)
    check_method_options(method, {k: v for k, v in options.items()
                                  if k not in RUNNER_ARGUMENTS})
    x = check_images(model, x)
    check_model_output(model, x)
    result = explain(model, x, target, method, output=output, **options)
    return (result.attributions, result.baselines) if return_baseline else result.attributions

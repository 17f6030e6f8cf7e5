"""Attribution methods, created by name; all share one signature (as in Captum).

``method(model, x, target, *, output, internal_batch_size, image_ids, seed, **options)``
returns an :class:`~uni.methods.path.Attribution`. The names are the configs in
``conf/method/``: ``ig_<baseline>`` (IG from a static baseline), ``deeplift``, ``uni``,
``blur_ig``, ``guided_ig``, ``expected_gradients``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from uni import rng
from uni.errors import ConfigError
from uni.methods import expected_gradients as _expected_gradients
from uni.methods.baselines import BASELINES, RANDOM_BASELINES
from uni.methods.blur_ig import blur_ig
from uni.methods.deeplift import deeplift
from uni.methods.guided_ig import guided_ig
from uni.methods.ig import ig
from uni.methods.path import Attribution, integrated_gradients, riemann_rule
from uni.methods.unlearning import uni, uni_baseline
from uni.models import OUTPUTS

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
    seed, **options) -> (baselines, draws)``, all the straight-line baselines (draw-major)
    when ``explain(...).baselines`` holds only the first draw."""

    fn: Callable[..., Attribution]
    random: Flag = False
    restart_options: dict = field(default_factory=dict)
    straight_line: Flag = True
    baselines: Callable | None = None

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

    @property
    def has_restarts(self) -> bool:
        """:meth:`restarts` with the method's default options."""
        return self.restarts()


def _noise_baseline(options: dict) -> bool:
    return options.get("baseline", "black") in RANDOM_BASELINES


METHODS: dict[str, MethodSpec] = {
    **{f"ig_{b}": MethodSpec(functools.partial(ig, baseline=b), random=b in RANDOM_BASELINES)
       for b in BASELINES},
    "deeplift": MethodSpec(deeplift, straight_line=False),
    "uni": MethodSpec(uni, restart_options={"random_start": True}),
    # paths that are not straight lines: no Riemann budget to vary, no straight-line surrogate
    "blur_ig": MethodSpec(blur_ig, straight_line=False),
    "guided_ig": MethodSpec(guided_ig, random=_noise_baseline, straight_line=False),
    # straight lines from baselines drawn from data (with points=riemann)
    "expected_gradients": MethodSpec(
        _expected_gradients.expected_gradients, random=True,
        straight_line=_expected_gradients.is_straight_line,
        baselines=_expected_gradients.method_baselines,
    ),
}


def get_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is not one of {sorted(METHODS)}")
    return METHODS[name]


def get_method(name: str) -> Callable[..., Attribution]:
    return get_spec(name).fn


def restart_seed(seed: int, restart: int) -> int:
    """The seed of restart ``restart`` (0: ``seed`` itself): independent draws."""
    return seed if restart == 0 else rng.stable_seed(seed, "", f"restart/{restart}")


def resolve_target(model: torch.nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Class indices as a long tensor on ``x``'s device; ``None`` means the prediction."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(-1)
    target = torch.as_tensor(target, device=x.device, dtype=torch.long)
    return target.expand(x.shape[0]).clone() if target.dim() == 0 else target


def explain(
    model: torch.nn.Module,
    x: torch.Tensor,
    target=None,
    method: str = "uni",
    *,
    output: str = "prob",
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    internal_batch_size: int = 16,
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
    target = resolve_target(model, x, target)
    return fn(
        model, x, target, output=output, image_ids=image_ids, seed=seed,
        internal_batch_size=internal_batch_size, **options,
    )


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

    ``x``: a batch in [0, 1]; ``target``: class indices (``None``: the prediction);
    ``output``: explain the softmax probability (``prob``) or the logit (``logit``);
    ``rule``: ``left|right|middle|trapezoid`` (Blur IG and Guided IG take only ``right``:
    their paths place their own points). Other options go to the method, e.g. ``eta``,
    ``eps``, ``pgd_steps`` for UNI, ``sigma`` for ``ig_blur``, ``max_sigma`` for
    ``blur_ig``, ``fraction`` for ``guided_ig``, ``samples`` and ``reference`` (a tensor
    of images) for ``expected_gradients``.
    """
    if method != "deeplift":
        options.update(steps=steps, rule=rule)
    result = explain(model, x, target, method, output=output, **options)
    return (result.attributions, result.baselines) if return_baseline else result.attributions


__all__ = [
    "METHODS", "Attribution", "MethodSpec", "attribute", "explain", "get_method", "get_spec",
    "integrated_gradients", "resolve_target", "restart_seed", "riemann_rule", "uni_baseline",
]

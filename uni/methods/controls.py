"""Controls for UNI at UNI's path length: IG from baselines at the same distance
``||x - x'||`` from each image as UNI's, that differ from UNI in one thing each.

- ``adv_baseline``: UNI's search (ball, norm, steps, update, step sizes) minimising
  ``log p_c`` under the *original* model: everything of UNI but the unlearning;
- ``random_ball``: ``x + r u``, ``u`` uniform on the norm's unit sphere (keyed on
  ``(seed, image_id)``), clipped to [0, 1];
- ``ig_black_near`` / ``ig_blur_near``: the black / blurred baseline moved along the
  segment towards ``x`` until it sits at the distance.

``distance``: ``uni`` (each image's distance from UNI's baseline with UNI's default
options, :mod:`uni.methods.unlearning`; computed here, one UNI search per image; in a
run with a ``method.uni`` entry, that entry's options, and its distances read from the
attribution store where UNI's explanations are stored),
``uni_paper`` (from the paper's Algorithm 1, :data:`~uni.methods.unlearning.PAPER`),
or a number (pixel units, in ``norm``). Every baseline lands at exactly that distance
(clipping to [0, 1] is undone by searching the step length along the same direction);
where the box leaves no room (an offset that cannot reach it), as far as it allows.
The records carry ``dist_l2``, ``dist_linf`` and ``target_distance`` per image, as UNI's
carry ``dist_l2`` and ``dist_linf``. All integrate through the one path core.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from uni import rng
from uni.contract import keyword_parameters
from uni.errors import ConfigError
from uni.methods._registry import not_idgi, register_method
from uni.methods.baselines import black, blur
from uni.methods.path import Attribution, integrated_gradients
from uni.methods.unlearning import NORMS, PAPER, ball_search, class_log_prob, uni_baseline

# controls of UNI (uni.catalog reads this without importing the module)
CATALOG = [
    {"name": "adv_baseline", "order": 90, "group": "control"},
    {"name": "random_ball", "order": 91, "group": "control"},
    {"name": "ig_black_near", "order": 92, "group": "control"},
    {"name": "ig_blur_near", "order": 93, "group": "control"},
]
DISTANCES = ("uni", "uni_paper")
# the options of UNI's baseline (what sets its distance; not the path integral's)
UNI_OPTIONS = frozenset(keyword_parameters(uni_baseline)) - {"model", "x", "target",
                                                              "image_ids", "seed"}
BISECTIONS = 60  # halvings of the step length: far below float32 resolution
DOUBLINGS = 64  # of the step length while clipping keeps the point short of the radius


def norm_of(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def with_uni_distance(options: dict, methods: dict) -> dict:
    """A control entry's ``options`` with ``distance: uni`` (``uni_paper``) replaced by the
    options of the run's ``method.uni`` (``method.uni_paper``) entry among ``methods``,
    where the run has one: the control is then at the distance of the UNI the run scores,
    and its record keys change with that UNI's options (:attr:`MethodSpec.keyed_options
    <uni.methods.MethodSpec>`). Otherwise ``options`` as they are."""
    distance = options.get("distance")
    if distance not in DISTANCES or distance not in methods:
        return options
    reference = {k: v for k, v in methods[distance].items() if k in UNI_OPTIONS}
    return {**options, "distance": {"kind": distance, **reference}}


def stored_distances(options: dict, stored) -> dict:
    """``options`` with a ``distance`` of the run's UNI (:func:`with_uni_distance`)
    replaced by each image's ``||x - x'||`` read from UNI's stored explanations (its
    ``dist_<norm>`` diagnostic; ``stored(entry)``: every image's stored tensors of that
    method entry, or ``None``), when every image's is stored (UNI explained earlier in the
    batch or the run); else ``options`` unchanged and the control computes UNI's baseline
    itself (:attr:`MethodSpec.stored_options <uni.methods.MethodSpec>`)."""
    distance = options.get("distance")
    if not isinstance(distance, dict):
        return options
    explanations = stored(distance.get("kind"))
    name = f"diagnostic/dist_{options.get('norm', 'l2')}"
    if explanations is None or any(name not in tensors for tensors in explanations):
        return options
    return {**options, "distance": torch.stack([t[name].reshape(()) for t in explanations])}


def target_distance(model, x, target, distance, norm, image_ids, seed) -> torch.Tensor:
    """Each image's distance ``(N,)``: a number, or UNI's (``uni``, ``uni_paper``, or
    ``{"kind": "uni" | "uni_paper", **options}``: UNI with those baseline options)."""
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r} is not one of {list(NORMS)}")
    if isinstance(distance, str):
        distance = {"kind": distance}
    if isinstance(distance, dict):
        options = dict(distance)
        kind = options.pop("kind", "uni")
        if kind not in DISTANCES or set(options) - UNI_OPTIONS:
            raise ConfigError(f"distance={distance!r} is not a number or one of "
                              f"{list(DISTANCES)}")
        defaults = PAPER if kind == "uni_paper" else {}
        baseline, _ = uni_baseline(model, x, target, image_ids=image_ids, seed=seed,
                                   **{**defaults, **options})
        return norm_of(x - baseline, norm).detach()
    if isinstance(distance, torch.Tensor):  # one per image (read from the store)
        return distance.to(x.device, torch.float32).reshape(x.shape[0])
    if isinstance(distance, bool) or not isinstance(distance, (int, float)) or distance < 0:
        raise ConfigError(f"distance={distance!r} must be a number >= 0 or one of "
                          f"{list(DISTANCES)}")
    return torch.full((x.shape[0],), float(distance), device=x.device)


def at_distance(x: torch.Tensor, direction: torch.Tensor, radius: torch.Tensor,
                norm: str) -> torch.Tensor:
    """``clip(x + s direction, 0, 1)`` with ``s >= 0`` per image such that its distance
    from ``x`` is ``radius``; the farthest point along ``direction`` where ``radius`` is
    out of reach. Clipping only shortens the offset, so ``s`` is at least ``radius /
    ||direction||``: from there the step doubles until it reaches the radius, then
    bisection (the clipped distance grows with ``s``)."""
    shape = (-1, *[1] * (x.dim() - 1))
    x, direction, radius = x.double(), direction.double(), radius.double()

    def reached(s: torch.Tensor) -> torch.Tensor:
        return norm_of((x + s.view(shape) * direction).clamp(0, 1) - x, norm)

    size = norm_of(direction, norm)
    # a zero direction cannot move: the point stays at x
    low = torch.where(size > 0, radius / size.clamp_min(1e-300), torch.zeros_like(size))
    high = low.clone()
    for _ in range(DOUBLINGS):
        short = reached(high) < radius
        if not short.any():
            break
        low = torch.where(short, high, low)
        high = torch.where(short, 2 * high, high)
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        far = reached(middle) >= radius
        high = torch.where(far, middle, high)
        low = torch.where(far, low, middle)
    return (x + high.view(shape) * direction).clamp(0, 1).float()


def towards(x: torch.Tensor, start: torch.Tensor, radius: torch.Tensor,
            norm: str) -> torch.Tensor:
    """``start`` moved along the segment to ``x`` until its distance is ``radius`` (no
    move if it is closer already)."""
    shape = (-1, *[1] * (x.dim() - 1))
    fraction = (radius / norm_of(start - x, norm).clamp_min(1e-30)).clamp(max=1.0)
    return x + fraction.view(shape) * (start - x)


def unit_sphere(x: torch.Tensor, norm: str, image_ids: Sequence[str], seed: int) -> torch.Tensor:
    """A direction per image, uniform on the norm's unit sphere: a normalised Gaussian
    (L2), or a uniform point of a face of the cube picked uniformly (L-inf)."""
    def draw(g: torch.Generator) -> torch.Tensor:
        if norm == "l2":
            v = torch.randn(x.shape[1:], generator=g)
            return v / v.norm()
        v = torch.rand(x.shape[1:], generator=g) * 2 - 1
        face = torch.randint(v.numel(), (1,), generator=g)
        sign = torch.randint(2, (1,), generator=g).float() * 2 - 1
        v.view(-1)[face] = sign
        return v

    return rng.per_image(draw, image_ids, seed, "random_ball", x.device).to(x.dtype)


def control_baselines(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    control: str,
    distance: str | float = "uni",
    norm: str = "l2",
    sigma: float = 10.0,
    pgd_steps: int = 20,
    pgd_update: str = "adam",
    pgd_schedule: str = "constant",
    pgd_step_size: float | None = None,
    pgd_return: str = "best",
    image_ids: Sequence[str] = (),
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The control's baseline at the distance, and its diagnostics (``target_distance``
    and, for ``adv_baseline``, the search's). ``sigma``: ``ig_blur_near``'s blur (px at
    224 px); the ``pgd_*`` options: ``adv_baseline``'s search, UNI's defaults."""
    image_ids = list(image_ids) if image_ids else rng.content_ids(x)
    radius = target_distance(model, x, target, distance, norm, image_ids, seed)
    diagnostics = {"target_distance": radius}
    if control == "random_ball":
        baseline = at_distance(x, unit_sphere(x, norm, image_ids, seed), radius, norm)
    elif control == "ig_black_near":
        baseline = towards(x, black(x), radius, norm)
    elif control == "ig_blur_near":
        baseline = towards(x, blur(x, sigma), radius, norm)
    elif control == "adv_baseline":
        found, search = ball_search(model, x, class_log_prob(target), radius, norm, pgd_steps,
                                    pgd_step_size, False, image_ids, seed, pgd_update,
                                    pgd_schedule, None, pgd_return)
        # on the sphere of the radius along the search's offset (the search may stop inside)
        baseline = at_distance(x, found - x, radius, norm)
        diagnostics.update(log_p_c_start=search["loss_start"],
                           best_iteration=search["best_iteration"])
    else:
        raise ConfigError(f"control={control!r} is not one of {list(CONTROLS)}")
    return baseline.to(x.dtype).detach(), diagnostics


def control(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    control: str,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids: Sequence[str] = (),
    seed: int = 0,
    idgi: bool = False,
    **options,
) -> Attribution:
    """IG from the control's baseline (``options``: :func:`control_baselines`);
    diagnostics: ``target_distance`` and the path's (``dist_l2``, ``dist_linf``, ...)."""
    baseline, diagnostics = control_baselines(model, x, target, control=control,
                                              image_ids=image_ids, seed=seed, **options)
    result = integrated_gradients(model, x, baseline, target, steps, rule, output,
                                  internal_batch_size, idgi=idgi)
    result.diagnostics.update(diagnostics)
    return result


def baselines_of(model, x, target, *, image_ids=(), seed=0, control: str,
                 **options) -> tuple[torch.Tensor, int]:
    """The control's baseline without its path integral, as ``(baselines, draws)``."""
    baseline, _ = control_baselines(model, x, target, control=control, image_ids=image_ids,
                                    seed=seed, **options)
    return baseline, 1


CONTROLS = ("adv_baseline", "random_ball", "ig_black_near", "ig_blur_near")
# the options of control_baselines a control does not use
_SEARCH = frozenset({"pgd_steps", "pgd_update", "pgd_schedule", "pgd_step_size", "pgd_return"})
CONTROL_EXCLUDED = {
    "adv_baseline": frozenset({"control", "sigma"}),
    "random_ball": _SEARCH | {"control", "sigma"},
    "ig_black_near": _SEARCH | {"control", "sigma"},
    "ig_blur_near": _SEARCH | {"control"},
}

for _control in CONTROLS:
    register_method(
        _control, functools.partial(control, control=_control), catalog=CATALOG,
        straight_line=not_idgi, random=_control == "random_ball",
        baselines=functools.partial(baselines_of, control=_control),
        option_functions=(control_baselines,), excluded=CONTROL_EXCLUDED[_control],
        keyed_options=with_uni_distance, stored_options=stored_distances,
    )

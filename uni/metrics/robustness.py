"""Robustness of attributions to label-preserving perturbations (Ghorbani, Abid & Zou
2019, "Interpretation of Neural Networks Is Fragile", AAAI; DESIGN §3).

Find ``delta`` with ``||delta||_inf <= eps`` (pixel units) and ``x + delta`` in [0, 1]
that keeps the model's prediction (``argmax F(x + delta) = argmax F(x)``, the explained
class ``c`` when ``target=prediction``, the default), recompute the attribution of
``x + delta`` with the same method, options, ids and seed, and compare it with ``A(x)``:

- ``robustness_<attack>_spearman``: Spearman rank correlation of the channel-summed maps;
- ``robustness_<attack>_intersection``: top-``k`` intersection, the fraction of the ``k``
  pixels with the largest channel-summed ``A(x)`` that are also among the ``k`` largest of
  ``A(x + delta)`` (ties in raster order);
- ``robustness_<attack>_linf``: ``||delta||_inf`` of the perturbation used;
- ``robustness_<attack>_skipped``: 1.0 where no perturbation kept the prediction (the
  three values above are NaN there), else 0.0. Skipped images are never dropped.

Attacks (``attack``: one name or a list of them; each adds its own four keys):

- ``random``: ``delta = eps * sign noise`` per pixel and channel, drawn from the
  generator keyed on ``(seed, image_id, "robustness/random")``; skipped if the
  prediction changes.
- ``fgsm``: one signed-gradient step that lowers ``F_c``,
  ``delta = -eps' sign(grad F_c(x))``, with ``eps' = eps, eps/2, ...`` (``halvings``
  halvings at most) until the prediction is kept.
- ``topk`` (Ghorbani et al.'s top-k attack): ``steps`` signed steps of size
  ``step_size`` (default ``2.5 eps / steps``), projected onto the ball and [0, 1], that
  lower ``D(x') = sum_{i in K} m_i(x') / sum_i |m_i(x')|``, the share of the
  channel-summed attribution map ``m`` that stays on ``K``, the original top-``k``
  pixels. ``m`` is the attribution of a differentiable surrogate: a copy of the model
  whose ReLU-family activations are replaced by Softplus(``softplus_beta``) versions
  (ReLU, ReLU6/Hardtanh, LeakyReLU, Hardswish, Hardsigmoid, HardMish), with IG of
  ``surrogate_steps`` steps (default: the method's) from the method's baseline,
  recomputed at every iterate (UNI's unlearned baseline included) and treated as a
  constant. A method without a straight-line path (DeepLIFT, Blur IG, Guided IG,
  Expected Gradients with ``points: random``) is not attacked (n/a). A
  step that would change the prediction is not taken and that image's step size is
  halved (backtracking); among the iterates taken, the one with the lowest ``D`` is
  used; skipped if none was taken.

  The gradient of ``D`` needs Hessian-vector products of ``F_c`` along the path,
  ``d/dx <u, A(x)> = u * G + sum_k w_k alpha_k H_k ((x - x') * u)``, computed chunk by
  chunk (memory bounded by the method's ``internal_batch_size``): ``hvp="autograd"``
  (exact double backward) or ``hvp="finite_difference"`` (default; central differences
  of gradients with a displacement of ``fd_step`` in pixel units, ~0.2% error against
  autograd on EfficientNet-Lite0 and 10-30x faster on CPU, where PyTorch's double
  backward of depthwise convolutions runs one convolution per channel).

Runner contract: pass ``method`` (the method's name) and ``method_options`` (its
config) as keyword arguments.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import timm.layers.activations as timm_activations
import torch
import torch.nn.functional as F
from torch import nn

from uni import rng
from uni.errors import ConfigError
from uni.methods import explain, get_spec, restart_seed
from uni.methods.path import path_gradients, riemann_rule, straight_line
from uni.methods.unlearning import project
from uni.metrics._common import (
    method_baselines,
    pixel_map,
    positive_int,
    spearman,
    top_k_intersection,
    top_k_mask,
)
from uni.models import class_score

ATTACKS = ("random", "fgsm", "topk")
NOISE_DRAWS = ("independent", "same")
HVPS = ("finite_difference", "autograd")
ATTACK = "topk"
EPS = 8 / 255
STEPS = 10  # topk iterations
K = 1000  # pixels
SOFTPLUS_BETA = 10.0
HALVINGS = 4  # fgsm
HVP = "finite_difference"
FD_STEP = 3e-4  # pixel units (measured optimum on EfficientNet-Lite0)
NOISE_DRAW = "independent"


# --- the smooth surrogate ---------------------------------------------------------------


def _softplus(x: torch.Tensor, beta: float) -> torch.Tensor:
    return F.softplus(x, beta=beta)


class SmoothClamp(nn.Module):
    """Softplus version of ``clamp(x, low, high)`` (ReLU: ``low=0, high=None``):
    ``low + sp(x - low) - sp(x - high)``."""

    def __init__(self, beta: float, low: float = 0.0, high: float | None = None):
        super().__init__()
        self.beta, self.low, self.high = beta, low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.low + _softplus(x - self.low, self.beta)
        return y if self.high is None else y - _softplus(x - self.high, self.beta)


class SmoothLeakyReLU(nn.Module):
    def __init__(self, beta: float, negative_slope: float):
        super().__init__()
        self.beta, self.slope = beta, negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x + (1 - self.slope) * _softplus(x, self.beta)


class SmoothHardSigmoid(nn.Module):
    """``clamp(x + 3, 0, 6) / 6``, smoothed."""

    def __init__(self, beta: float):
        super().__init__()
        self.clamp = SmoothClamp(beta, 0.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(x + 3) / 6


class SmoothHardSwish(SmoothHardSigmoid):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * super().forward(x)


class SmoothHardMish(nn.Module):
    """``0.5 x clamp(x + 2, 0, 2)``, smoothed."""

    def __init__(self, beta: float):
        super().__init__()
        self.clamp = SmoothClamp(beta, 0.0, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * self.clamp(x + 2)


def _smooth_version(module: nn.Module, beta: float) -> nn.Module | None:
    if isinstance(module, nn.ReLU):
        return SmoothClamp(beta)
    if isinstance(module, nn.Hardtanh):  # ReLU6 too
        return SmoothClamp(beta, float(module.min_val), float(module.max_val))
    if isinstance(module, nn.LeakyReLU):
        return SmoothLeakyReLU(beta, float(module.negative_slope))
    if isinstance(module, (nn.Hardswish, timm_activations.HardSwish)):
        return SmoothHardSwish(beta)
    if isinstance(module, (nn.Hardsigmoid, timm_activations.HardSigmoid)):
        return SmoothHardSigmoid(beta)
    if isinstance(module, timm_activations.HardMish):
        return SmoothHardMish(beta)
    return None


def smooth_surrogate(model: nn.Module, beta: float = SOFTPLUS_BETA) -> nn.Module:
    """A copy of ``model`` (eval mode, no parameter gradients) whose ReLU-family
    activation modules are replaced by Softplus(``beta``) versions, so that gradients of
    attributions are informative (a ReLU network's Hessian is zero almost everywhere).
    Activations called as functions inside ``forward`` are not replaced."""
    surrogate = copy.deepcopy(model).eval().requires_grad_(False)
    for parent in list(surrogate.modules()):
        for name, child in list(parent.named_children()):
            smooth = _smooth_version(child, beta)
            if smooth is not None:
                setattr(parent, name, smooth)
    return surrogate


# --- the attacks ------------------------------------------------------------------------


@dataclass
class AttackResult:
    """``x_adv``: the perturbed images (``x`` itself where skipped); ``kept``: whether a
    perturbation keeping the prediction was found (``False`` = skipped)."""

    x_adv: torch.Tensor
    kept: torch.Tensor


@torch.no_grad()
def _predictions(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[s : s + batch_size]).argmax(-1)
                      for s in range(0, x.shape[0], batch_size)])


def _random_attack(model, x, eps, prediction, image_ids, seed, batch_size) -> AttackResult:
    signs = rng.per_image(
        lambda g: torch.randint(0, 2, x.shape[1:], generator=g) * 2 - 1,
        image_ids, seed, "robustness/random", x.device,
    ).to(x.dtype)
    x_adv = (x + eps * signs).clamp(0, 1)
    return AttackResult(x_adv, _predictions(model, x_adv, batch_size) == prediction)


def _fgsm_attack(model, x, target, eps, halvings, prediction, output, batch_size):
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(class_score(model(xg), target, output).sum(), xg)
    direction = -grad.sign()
    x_adv, kept = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for j in range(halvings + 1):
        candidate = (x + eps / 2**j * direction).clamp(0, 1)
        ok = (_predictions(model, candidate, batch_size) == prediction) & ~kept
        x_adv[ok], kept = candidate[ok], kept | ok
        if bool(kept.all()):
            break
    return AttackResult(x_adv, kept)


def path_hvp(
    model: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    vector: torch.Tensor,
    target: torch.Tensor,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    output: str = "prob",
    internal_batch_size: int = 16,
    hvp: str = HVP,
    fd_step: float = FD_STEP,
) -> torch.Tensor:
    """``sum_k weights_k H(p_k) vector`` per image, ``p_k = x' + alphas_k (x - x')`` and
    ``H`` the Hessian of ``F_c`` in the input, chunked (no graph across chunks)."""
    n = x.shape[0]
    if hvp == "finite_difference":
        size = vector.flatten(1).abs().amax(1).clamp_min(1e-30)
        h = (fd_step / size).view(-1, 1, 1, 1)
        plus, _ = path_gradients(model, straight_line(x, baseline, alphas, h * vector), n,
                                 target, alphas, weights, output, internal_batch_size)
        minus, _ = path_gradients(model, straight_line(x, baseline, alphas, -h * vector), n,
                                  target, alphas, weights, output, internal_batch_size)
        return (plus - minus) / (2 * h)
    points_of = straight_line(x, baseline, alphas)
    steps = alphas.numel()
    image_index = torch.arange(n, device=x.device).repeat_interleave(steps)
    step_index = torch.arange(steps, device=x.device).repeat(n)
    weights = weights.to(x.device, torch.float32)
    total = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
    chunk = max(1, int(internal_batch_size))
    for start in range(0, image_index.numel(), chunk):
        i, k = image_index[start : start + chunk], step_index[start : start + chunk]
        with torch.enable_grad():
            points = points_of(i, k).detach().requires_grad_(True)
            values = class_score(model(points), target[i], output)
            (grad,) = torch.autograd.grad(values.sum(), points, create_graph=True)
            (product,) = torch.autograd.grad((grad * vector[i]).sum(), points)
        total.index_add_(0, i, product.float() * weights[k].view(-1, 1, 1, 1))
    return total


def topk_objective_and_gradient(
    surrogate: nn.Module,
    x: torch.Tensor,
    baselines: torch.Tensor,
    draws: int,
    target: torch.Tensor,
    top: torch.Tensor,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    output: str = "prob",
    internal_batch_size: int = 16,
    hvp: str | None = HVP,
    fd_step: float = FD_STEP,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``D(x)`` per image (share of the channel-summed surrogate IG map on the boolean
    ``(N, H, W)`` mask ``top``) and, unless ``hvp`` is None, its gradient in ``x`` with the
    ``(draws * N)`` baselines held constant (attributions averaged over draws)."""
    xs, targets = x.repeat(draws, 1, 1, 1), target.repeat(draws)
    grad_sum, _ = path_gradients(surrogate, straight_line(xs, baselines, alphas), xs.shape[0],
                                 targets, alphas, weights, output, internal_batch_size)
    delta = xs - baselines
    attributions = (delta * grad_sum).view(draws, *x.shape).mean(0)
    m = pixel_map(attributions)  # (N, H, W)
    total = m.abs().flatten(1).sum(1).clamp_min(1e-30)
    objective = (m * top).flatten(1).sum(1) / total
    if hvp is None:
        return objective.detach(), None
    # dD/dA (same for every channel), then dD/dx = u * G + sum_k w_k alpha_k H_k (delta * u)
    u = (top.float() - objective.view(-1, 1, 1) * m.sign()) / total.view(-1, 1, 1)
    u_rows = (u.unsqueeze(1) / draws).repeat(draws, 1, 1, 1)
    product = path_hvp(surrogate, xs, baselines, delta * u_rows, targets, alphas,
                       weights * alphas, output, internal_batch_size, hvp, fd_step)
    gradient = (u_rows * grad_sum + product).view(draws, *x.shape).sum(0)
    return objective.detach(), gradient.detach()


def _topk_attack(model, x, attributions, target, prediction, *, eps, method, method_options,
                 steps, k, softplus_beta, step_size, surrogate_steps, hvp, fd_step, output,
                 image_ids, seed, batch_size) -> AttackResult:
    n, _, height, width = x.shape
    options = dict(method_options or {})
    surrogate = smooth_surrogate(model, softplus_beta)
    top = top_k_mask(pixel_map(attributions).flatten(1), k).view(n, height, width)
    alphas, weights = riemann_rule(
        int(surrogate_steps or options.get("steps", 32)), options.get("rule", "right")
    )
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    internal_batch_size = int(options.get("internal_batch_size", 16))
    step = torch.full((n,), 2.5 * eps / steps if step_size is None else float(step_size),
                      device=x.device, dtype=x.dtype)

    def evaluate(index: torch.Tensor, points: torch.Tensor, with_gradient: bool):
        """Surrogate objective (and its gradient) of ``points``, images ``index``."""
        ids = [image_ids[i] for i in index.tolist()]
        baselines, draws = method_baselines(model, points, target[index], method, options,
                                            output=output, image_ids=ids, seed=seed)
        if baselines is None:
            raise ConfigError(f"robustness attack='topk': method={method!r} has no baseline "
                              "for the surrogate attribution; use attack=random or fgsm")
        return topk_objective_and_gradient(
            surrogate, points, baselines, draws, target[index], top[index], alphas, weights,
            output, internal_batch_size, hvp if with_gradient else None, fd_step,
        )

    everyone = torch.arange(n, device=x.device)
    _, gradient = evaluate(everyone, x, True)
    x_t, x_adv = x.clone(), x.clone()
    best = torch.full((n,), float("inf"), device=x.device)
    kept = torch.zeros(n, dtype=torch.bool, device=x.device)
    for t in range(steps):
        candidate = project(x_t - step.view(-1, 1, 1, 1) * gradient.sign(), x, eps, "linf")
        ok = _predictions(model, candidate, batch_size) == prediction
        step = torch.where(ok, step, step / 2)  # backtrack where the prediction changed
        index = ok.nonzero().flatten()
        if index.numel() == 0:
            continue
        x_t[index] = candidate[index]
        kept[index] = True
        objective, moved = evaluate(index, x_t[index], t < steps - 1)
        if moved is not None:
            gradient[index] = moved
        better = objective < best[index]
        x_adv[index[better]], best[index[better]] = x_t[index[better]], objective[better]
    return AttackResult(x_adv, kept)


def attack_list(attack: str | Sequence[str]) -> list[str]:
    """``attack`` as a list of attack names (one name or a list of names)."""
    if isinstance(attack, str):
        return [attack]
    try:
        return [str(a) for a in attack]
    except TypeError:
        return [repr(attack)]


def validate_options(
    attack: str | Sequence[str] = ATTACK, eps: float = EPS, steps: int = STEPS, k: int = K,
    softplus_beta: float = SOFTPLUS_BETA, halvings: int = HALVINGS,
    step_size: float | None = None, surrogate_steps: int | None = None, hvp: str = HVP,
    fd_step: float = FD_STEP, noise_draws: str = NOISE_DRAW,
) -> tuple[int, int]:
    """Raise :class:`ConfigError` for option values that cannot work (before any work);
    returns ``(steps, k)`` as ints."""
    if noise_draws not in NOISE_DRAWS:
        raise ConfigError(f"noise_draws={noise_draws!r} is not one of {list(NOISE_DRAWS)}")
    attacks = attack_list(attack)
    if not attacks or any(a not in ATTACKS for a in attacks):
        raise ConfigError(f"attack={attack!r} must be one of {list(ATTACKS)} or a list of them")
    if hvp not in HVPS:
        raise ConfigError(f"hvp={hvp!r} is not one of {list(HVPS)}")
    if not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"eps={eps!r} must be a finite number >= 0 (pixel units)")
    if not isinstance(softplus_beta, (int, float)) or not softplus_beta > 0:
        raise ConfigError(f"softplus_beta={softplus_beta!r} must be > 0")
    if not isinstance(fd_step, (int, float)) or not fd_step > 0:
        raise ConfigError(f"fd_step={fd_step!r} must be > 0")
    if step_size is not None and (not isinstance(step_size, (int, float)) or not step_size > 0):
        raise ConfigError(f"step_size={step_size!r} must be > 0 or null (2.5 eps / steps)")
    if isinstance(halvings, bool) or not isinstance(halvings, int) or halvings < 0:
        raise ConfigError(f"halvings={halvings!r} must be an integer >= 0")
    if surrogate_steps is not None:
        positive_int("surrogate_steps", surrogate_steps)
    return positive_int("steps", steps), positive_int("k", k)


def robustness_attack(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    method: str | None = None,
    method_options: dict | None = None,
    attack: str = ATTACK,
    eps: float = EPS,
    steps: int = STEPS,
    k: int = K,
    softplus_beta: float = SOFTPLUS_BETA,
    halvings: int = HALVINGS,
    step_size: float | None = None,
    surrogate_steps: int | None = None,
    hvp: str = HVP,
    fd_step: float = FD_STEP,
    output: str = "prob",
    batch_size: int = 64,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> AttackResult:
    """The perturbed images of one attack (see the module docstring) and which images
    kept the prediction."""
    if not isinstance(attack, str):
        raise ConfigError(f"attack={attack!r}: robustness_attack runs one attack at a time")
    steps, k = validate_options(attack, eps, steps, k, softplus_beta, halvings, step_size,
                                surrogate_steps, hvp, fd_step)
    if not method:
        raise ConfigError("robustness needs method=<name> and method_options (the runner "
                          "passes the explained method)")
    x = x.detach()
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    prediction = _predictions(model, x, batch_size)
    if eps == 0:
        return AttackResult(x.clone(), torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
    if attack == "random":
        return _random_attack(model, x, eps, prediction, image_ids, seed, batch_size)
    if attack == "fgsm":
        return _fgsm_attack(model, x, target, eps, halvings, prediction, output, batch_size)
    return _topk_attack(
        model, x, attributions.detach(), target, prediction, eps=eps, method=method,
        method_options=method_options, steps=steps, k=k, softplus_beta=softplus_beta,
        step_size=step_size, surrogate_steps=surrogate_steps, hvp=hvp, fd_step=fd_step,
        output=output, image_ids=image_ids, seed=seed, batch_size=batch_size,
    )


def metric_names(attack: str | Sequence[str] = ATTACK) -> list[str]:
    """The keys :func:`robustness` returns, for one attack or a list of them."""
    return [f"robustness_{a}_{kind}" for a in attack_list(attack)
            for kind in ("spearman", "intersection", "linf", "skipped")]


def compare_maps(a: torch.Tensor, b: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    """Spearman correlation and top-``k`` intersection of channel-summed attributions."""
    a, b = pixel_map(a).flatten(1), pixel_map(b).flatten(1)
    return spearman(a, b).to(a.device), top_k_intersection(a, b, k)


def robustness(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    method: str | None = None,
    method_options: dict | None = None,
    attack: str | Sequence[str] = ATTACK,
    eps: float = EPS,
    steps: int = STEPS,
    k: int = K,
    softplus_beta: float = SOFTPLUS_BETA,
    halvings: int = HALVINGS,
    step_size: float | None = None,
    surrogate_steps: int | None = None,
    hvp: str = HVP,
    fd_step: float = FD_STEP,
    noise_draws: str = NOISE_DRAW,
    output: str = "prob",
    batch_size: int = 64,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image robustness values under each attack of ``attack`` (one name or a list);
    keys :func:`metric_names` (``score_input`` is accepted for the common metric
    signature and not needed).

    ``noise_draws``: whether a method with random draws (a noise baseline) explains
    ``x + delta`` with draws ``independent`` of those of ``x`` (default) or the ``same``
    draws (which makes it look stable by construction). The ``topk`` attack needs a
    straight-line surrogate: for a method without one (DeepLIFT, Blur IG, Guided IG) its
    values are NaN,
    skipped included, and recorded as not applicable."""
    validate_options(attack, eps, steps, k, softplus_beta, halvings, step_size,
                     surrogate_steps, hvp, fd_step, noise_draws)
    x = x.detach()
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    explain_seed = restart_seed(seed, 1) if noise_draws == "independent" else seed
    values: dict[str, torch.Tensor] = {}
    for name in dict.fromkeys(attack_list(attack)):
        if name == "topk" and not get_spec(method).is_straight_line(method_options):
            values.update({key: torch.full((x.shape[0],), float("nan"), device=x.device)
                           for key in metric_names(name)})
            continue
        result = robustness_attack(
            model, x, attributions, target, method=method, method_options=method_options,
            attack=name, eps=eps, steps=steps, k=k, softplus_beta=softplus_beta,
            halvings=halvings, step_size=step_size, surrogate_steps=surrogate_steps, hvp=hvp,
            fd_step=fd_step, output=output, batch_size=batch_size, image_ids=image_ids,
            seed=seed,
        )
        values.update(_scores(model, x, attributions, target, result, name, method,
                              method_options, int(k), output, image_ids, explain_seed))
    return values


def _scores(model, x, attributions, target, result: AttackResult, attack: str, method: str,
            method_options, k: int, output: str, image_ids, seed: int) -> dict[str, torch.Tensor]:
    """Compare ``A(x)`` with ``A(x_adv)`` (explained with ``seed``) where the prediction
    was kept; NaN elsewhere."""
    n = x.shape[0]
    names = metric_names(attack)
    nan = torch.full((n,), float("nan"), device=x.device)
    values = {name: nan.clone() for name in names}
    values[names[3]] = (~result.kept).float()
    index = result.kept.nonzero().flatten()
    if index.numel():
        adversarial = explain(
            model, result.x_adv[index], target[index], method, output=output,
            image_ids=[image_ids[i] for i in index.tolist()], seed=seed,
            **dict(method_options or {}),
        ).attributions
        rho, overlap = compare_maps(attributions[index], adversarial, k)
        values[names[0]][index] = rho.float()
        values[names[1]][index] = overlap
        values[names[2]][index] = (result.x_adv[index] - x[index]).flatten(1).abs().amax(1).float()
    return values

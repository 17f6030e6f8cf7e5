"""Robustness of attributions to label-preserving perturbations (Ghorbani, Abid & Zou
2019, "Interpretation of Neural Networks Is Fragile", AAAI; docs/design.md §3).

Find ``delta`` with ``||delta||_inf <= eps`` (pixel units) and ``x + delta`` in [0, 1]
that keeps the model's prediction (``argmax F(x + delta) = argmax F(x)``, the explained
class ``c`` when ``target=prediction``, the default), recompute the attribution of
``x + delta`` with the same method, options, ids and seed, and compare it with ``A(x)``:

- ``robustness_<attack>_spearman``: Spearman rank correlation of the channel-summed maps;
- ``robustness_<attack>_intersection``: top-``k`` intersection, the fraction of the ``k``
  pixels with the largest channel-summed ``A(x)`` that are also among the ``k`` largest of
  ``A(x + delta)`` (ties in raster order);
- ``robustness_<attack>_linf``, ``robustness_<attack>_l2``: ``||delta||_inf`` and
  ``||delta||_2`` of the perturbation used (the achieved budget);
- ``robustness_<attack>_skipped``: 1.0 where no perturbation kept the prediction (the
  values above are NaN there), else 0.0. Skipped images are never dropped.

Like with like (the experimental-design issue): maps are compared by ``compare``:
``magnitude`` (default; ``sum_c |A_c|`` per pixel, as Ghorbani et al. rank saliency) or
``signed`` (``sum_c A_c``). The budget is ``eps`` in the ``norm`` ball (``linf`` or
``l2``, pixel units); ``eps`` may be a list, a budget sweep, whose records are named
``robustness_<attack>_<budget>_<score>`` with ``<budget>`` ``linf<eps*255>`` or
``l2_<eps>`` (``.`` written ``p``); a single L-inf budget keeps the plain names. The
random and FGSM perturbations do not depend on the method (the same ``delta`` for every
method of an image); the top-k attack's does, so with ``to_budget`` (default) its best
iterate is scaled onto the budget's sphere (kept only where the prediction is kept),
which makes the achieved norm equal across methods on the images where it applies.

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
  pixels. ``m`` is the attribution of a differentiable surrogate
  (:func:`uni.models.smooth_surrogate`): a copy of the model whose ReLU-family
  activations are replaced by Softplus(``softplus_beta``) versions (ReLU,
  ReLU6/Hardtanh, LeakyReLU, Hardswish, Hardsigmoid, HardMish), with IG of
  ``surrogate_steps`` steps (default 8: the fewest as strong as the method's own 32 on
  10 development images, ``benchmarks/topk_attack.py``; ``None``: the method's steps)
  from the method's baseline,
  recomputed at every iterate (UNI's unlearned baseline included) and treated as a
  constant. A method without a straight-line path (DeepLIFT, Blur IG, Guided IG,
  Expected Gradients with ``points: random``) is not attacked (n/a). A
  step that would change the prediction is not taken and that image's step size is
  halved (backtracking); among the iterates taken, the one with the lowest ``D`` is
  used; skipped if none was taken.

  The gradient of ``D`` needs Hessian-vector products of ``F_c`` along the path,
  ``d/dx <u, A(x)> = u * G + sum_k w_k alpha_k H_k ((x - x') * u)``
  (:func:`uni.methods.path.path_hvp`), computed chunk by chunk (memory bounded by the
  method's ``internal_batch_size``): ``hvp="autograd"`` (exact double backward, the
  reference the tests compare with), ``"finite_difference"`` (central differences of
  gradients, displacement ``fd_step`` pixel units: two extra gradients per path point)
  or ``"forward_difference"`` (default: the gradients at the path points come from the
  surrogate attribution's own pass, one extra gradient per point; 0.5-0.7% from
  autograd on three development images with EfficientNet-Lite0, 99.5-99.8% of the
  signs the attack steps along agree). Both are faster than autograd on CPU, where
  PyTorch's double backward of depthwise convolutions runs one convolution per channel.

Runner contract: pass ``explainer``, the explained method entry as a
:class:`uni.methods.Explainer` (it explains ``x + delta`` and gives the surrogate's
baselines); the attacks' options travel as one :class:`AttackOptions`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from uni import rng
from uni.errors import ConfigError
from uni.methods import Explainer, restart_seed
from uni.methods.path import (
    FD_STEP,
    HVP,
    HVPS,
    path_gradients,
    path_hvp,
    riemann_rule,
    straight_line,
)
from uni.methods.unlearning import project
from uni.metrics._common import pixel_map, positive_int, spearman, top_k_intersection, top_k_mask
from uni.metrics._registry import register_metric
from uni.models import SMOOTH_BETA, class_score, smooth_surrogate

GHORBANI = ('Ghorbani, Abid & Zou 2019, "Interpretation of Neural Networks Is Fragile", '
            "AAAI")
CATALOG = [{  # read by uni.catalog without importing this module
    "name": "robustness", "order": 90,
    "scores": [[r"robustness_\w+_spearman", "higher"], [r"robustness_\w+_intersection", "higher"],
               [r"robustness_\w+_linf", None], [r"robustness_\w+_l2", None],
               [r"robustness_\w+_skipped", "lower"]],
    "citation": GHORBANI,
}]

ATTACKS = ("random", "fgsm", "topk")
NOISE_DRAWS = ("independent", "same")
NORMS = ("linf", "l2")
COMPARISONS = ("magnitude", "signed")
COMPARE = "magnitude"
NORM = "linf"
TO_BUDGET = True
ATTACK = "topk"
EPS = 8 / 255
STEPS = 10  # topk iterations
K = 1000  # pixels
SOFTPLUS_BETA = SMOOTH_BETA
SURROGATE_STEPS = 8  # topk: IG steps of the surrogate (make topk-calibration)
HALVINGS = 4  # fgsm
NOISE_DRAW = "independent"


@dataclass(frozen=True)
class AttackOptions:
    """The attacks' options (module docstring), checked when made: a value that cannot
    work is a one-line :class:`ConfigError` naming the option."""

    eps: float = EPS
    steps: int = STEPS
    k: int = K
    softplus_beta: float = SOFTPLUS_BETA
    halvings: int = HALVINGS
    step_size: float | None = None
    surrogate_steps: int | None = SURROGATE_STEPS
    hvp: str = HVP
    fd_step: float = FD_STEP
    norm: str = NORM
    to_budget: bool = TO_BUDGET
    compare: str = COMPARE

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r} is not one of {list(NORMS)}")
        if self.compare not in COMPARISONS:
            raise ConfigError(f"compare={self.compare!r} is not one of {list(COMPARISONS)}")
        if not isinstance(self.to_budget, bool):
            raise ConfigError(f"to_budget={self.to_budget!r} must be true or false")
        if self.hvp not in HVPS:
            raise ConfigError(f"hvp={self.hvp!r} is not one of {list(HVPS)}")
        eps = self.eps
        if not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
            raise ConfigError(f"eps={eps!r} must be a finite number >= 0 (pixel units)")
        if not isinstance(self.softplus_beta, (int, float)) or not self.softplus_beta > 0:
            raise ConfigError(f"softplus_beta={self.softplus_beta!r} must be > 0")
        if not isinstance(self.fd_step, (int, float)) or not self.fd_step > 0:
            raise ConfigError(f"fd_step={self.fd_step!r} must be > 0")
        step_size = self.step_size
        if step_size is not None and (not isinstance(step_size, (int, float))
                                      or not step_size > 0):
            raise ConfigError(f"step_size={step_size!r} must be > 0 or null (2.5 eps / steps)")
        halvings = self.halvings
        if isinstance(halvings, bool) or not isinstance(halvings, int) or halvings < 0:
            raise ConfigError(f"halvings={halvings!r} must be an integer >= 0")
        if self.surrogate_steps is not None:
            positive_int("surrogate_steps", self.surrogate_steps)
        object.__setattr__(self, "steps", positive_int("steps", self.steps))
        object.__setattr__(self, "k", positive_int("k", self.k))


def attack_list(attack: str | Sequence[str]) -> list[str]:
    """``attack`` as a list of attack names (one name or a list of names)."""
    if isinstance(attack, str):
        return [attack]
    try:
        return [str(a) for a in attack]
    except TypeError:
        return [repr(attack)]


def check_attacks(attack: str | Sequence[str], noise_draws: str = NOISE_DRAW) -> list[str]:
    """The attack names of ``attack`` (duplicates removed), or a :class:`ConfigError`."""
    if noise_draws not in NOISE_DRAWS:
        raise ConfigError(f"noise_draws={noise_draws!r} is not one of {list(NOISE_DRAWS)}")
    attacks = attack_list(attack)
    if not attacks or any(a not in ATTACKS for a in attacks):
        raise ConfigError(f"attack={attack!r} must be one of {list(ATTACKS)} or a list of them")
    return list(dict.fromkeys(attacks))


def budgets(eps: float | Sequence[float]) -> list[float]:
    """``eps`` as a list of budgets (one number or a list of them)."""
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        return [eps]
    try:
        values = list(eps)
    except TypeError:
        values = [eps]
    if not values:
        raise ConfigError("eps=[] holds no budget")
    return values


def budget_name(eps: float, norm: str) -> str:
    """The budget's part of a sweep's record names: ``linf4`` (4/255), ``l2_0p76078``."""
    text = f"linf{round(eps * 255, 3):g}" if norm == "linf" else f"l2_{eps:g}"
    return text.replace(".", "p").replace("-", "m")


def validate_options(attack: str | Sequence[str] = ATTACK, noise_draws: str = NOISE_DRAW,
                     eps: float | Sequence[float] = EPS, **options) -> AttackOptions:
    """Check :func:`robustness`'s options before any work (a :class:`ConfigError` for a
    value that cannot work); returns the attacks' :class:`AttackOptions` (of the first
    budget)."""
    check_attacks(attack, noise_draws)
    every = [AttackOptions(eps=e, **options) for e in budgets(eps)]
    return every[0]


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


@dataclass
class _Attacked:
    """What every attack works on: the images, the explained class, the prediction to
    keep and how the model is run and keyed."""

    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    prediction: torch.Tensor
    output: str
    batch_size: int
    image_ids: list[str]
    seed: int

    def keeps(self, candidate: torch.Tensor) -> torch.Tensor:
        return _predictions(self.model, candidate, self.batch_size) == self.prediction


def _random_attack(a: _Attacked, options: AttackOptions) -> AttackResult:
    x = a.x
    signs = rng.per_image(
        lambda g: torch.randint(0, 2, x.shape[1:], generator=g) * 2 - 1,
        a.image_ids, a.seed, "robustness/random", x.device,
    ).to(x.dtype)
    # the same sign pattern at every budget and norm: on the L2 sphere of radius eps
    scale = options.eps if options.norm == "linf" else options.eps / math.sqrt(signs[0].numel())
    x_adv = (x + scale * signs).clamp(0, 1)
    return AttackResult(x_adv, a.keeps(x_adv))


def _fgsm_attack(a: _Attacked, options: AttackOptions) -> AttackResult:
    x = a.x
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(class_score(a.model(xg), a.target, a.output).sum(), xg)
    direction = -grad.sign() if options.norm == "linf" else -_unit(grad)
    x_adv, kept = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for j in range(options.halvings + 1):
        candidate = (x + options.eps / 2**j * direction).clamp(0, 1)
        ok = a.keeps(candidate) & ~kept
        x_adv[ok], kept = candidate[ok], kept | ok
        if bool(kept.all()):
            break
    return AttackResult(x_adv, kept)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each image's ``v`` scaled to L2 norm 1 (0 stays 0)."""
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (v.dim() - 1))


def magnitude_map(attributions: torch.Tensor) -> torch.Tensor:
    """Attribution magnitude per pixel, ``sum_c |A_c|`` (Ghorbani et al.'s saliency)."""
    return attributions.abs().sum(1).float()


def comparable_map(attributions: torch.Tensor, compare: str = COMPARE) -> torch.Tensor:
    """The ``(N, H, W)`` map that robustness compares: magnitude or signed sum."""
    return magnitude_map(attributions) if compare == "magnitude" else pixel_map(attributions)


def to_budget(a: _Attacked, x_adv: torch.Tensor, kept: torch.Tensor, eps: float,
              norm: str) -> torch.Tensor:
    """``x_adv``'s perturbation scaled onto the budget's sphere (``||delta|| = eps`` before
    the pixel range clips it), where the prediction is then still kept; elsewhere
    ``x_adv`` itself."""
    delta = x_adv - a.x
    size = (delta.flatten(1).abs().amax(1) if norm == "linf"
            else delta.flatten(1).norm(dim=1)).clamp_min(1e-30)
    scaled = (a.x + delta * (eps / size).view(-1, 1, 1, 1)).clamp(0, 1)
    use = kept & (size > 1e-12) & a.keeps(scaled)
    return torch.where(use.view(-1, 1, 1, 1), scaled, x_adv)


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
    internal_batch_size: int = 4,
    hvp: str | None = HVP,
    fd_step: float = FD_STEP,
    compare: str = COMPARE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``D(x)`` per image (share of the surrogate IG map, :func:`comparable_map`, on the
    boolean ``(N, H, W)`` mask ``top``) and, unless ``hvp`` is None, its gradient in ``x``
    with the ``(draws * N)`` baselines held constant (attributions averaged over draws)."""
    xs, targets = x.repeat(draws, 1, 1, 1), target.repeat(draws)
    # the forward-difference HVP reuses the path gradients, weighted w_k alpha_k
    forward = hvp == "forward_difference"
    sums, _ = path_gradients(surrogate, straight_line(xs, baselines, alphas), xs.shape[0],
                             targets, alphas, torch.stack([weights, weights * alphas])
                             if forward else weights, output, internal_batch_size)
    grad_sum, along = (sums[0], sums[1]) if forward else (sums, None)
    delta = xs - baselines
    attributions = (delta * grad_sum).view(draws, *x.shape).mean(0)
    m = comparable_map(attributions, compare)  # (N, H, W)
    total = m.abs().flatten(1).sum(1).clamp_min(1e-30)
    objective = (m * top).flatten(1).sum(1) / total
    if hvp is None:
        return objective.detach(), None
    # dD/dA, then dD/dx = u * G + sum_k w_k alpha_k H_k (delta * u); signed: the same for
    # every channel; magnitude (m = sum_c |A_c| >= 0): times each channel's sign
    if compare == "magnitude":
        u = ((top.float() - objective.view(-1, 1, 1)) / total.view(-1, 1, 1)).unsqueeze(1) \
            * attributions.sign()
    else:
        u = ((top.float() - objective.view(-1, 1, 1) * m.sign())
             / total.view(-1, 1, 1)).unsqueeze(1)
    u_rows = (u / draws).repeat(draws, 1, 1, 1)
    product = path_hvp(surrogate, xs, baselines, delta * u_rows, targets, alphas,
                       weights * alphas, output, internal_batch_size, hvp, fd_step, along)
    gradient = (u_rows * grad_sum + product).view(draws, *x.shape).sum(0)
    return objective.detach(), gradient.detach()


def _topk_attack(a: _Attacked, options: AttackOptions, attributions: torch.Tensor,
                 explainer: Explainer, baselines: torch.Tensor | None = None) -> AttackResult:
    if not explainer.straight_line:
        raise ConfigError(f"robustness attack='topk': method={explainer.method!r} has no "
                          "baseline for the surrogate attribution; use attack=random or fgsm")
    x, target, image_ids = a.x, a.target, a.image_ids
    n, _, height, width = x.shape
    eps, steps = options.eps, options.steps
    surrogate = smooth_surrogate(a.model, options.softplus_beta)
    top = top_k_mask(comparable_map(attributions, options.compare).flatten(1),
                     options.k).view(n, height, width)
    alphas, weights = riemann_rule(
        int(options.surrogate_steps or explainer.option("steps")), explainer.option("rule")
    )
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    internal_batch_size = int(explainer.option("internal_batch_size"))
    step = torch.full((n,), 2.5 * eps / steps if options.step_size is None
                      else float(options.step_size), device=x.device, dtype=x.dtype)

    def evaluate(index: torch.Tensor, points: torch.Tensor, with_gradient: bool,
                 first_draw: torch.Tensor | None = None):
        """Surrogate objective (and its gradient) of ``points``, images ``index``
        (``first_draw``: their baselines when the method already computed them)."""
        ids = [image_ids[i] for i in index.tolist()]
        lines, draws = explainer.baselines(points, target[index], image_ids=ids,
                                           seed=a.seed, first_draw=first_draw)
        return topk_objective_and_gradient(
            surrogate, points, lines, draws, target[index], top[index], alphas, weights,
            a.output, internal_batch_size, options.hvp if with_gradient else None,
            options.fd_step, options.compare,
        )

    everyone = torch.arange(n, device=x.device)
    _, gradient = evaluate(everyone, x, True, baselines)  # x's baselines: the method's
    x_t, x_adv = x.clone(), x.clone()
    best = torch.full((n,), float("inf"), device=x.device)
    kept = torch.zeros(n, dtype=torch.bool, device=x.device)
    for t in range(steps):
        direction = gradient.sign() if options.norm == "linf" else _unit(gradient)
        candidate = project(x_t - step.view(-1, 1, 1, 1) * direction, x, eps, options.norm)
        ok = a.keeps(candidate)
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
    if options.to_budget:
        x_adv = to_budget(a, x_adv, kept, eps, options.norm)
    return AttackResult(x_adv, kept)


def robustness_attack(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    attack: str = ATTACK,
    options: AttackOptions | None = None,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    baselines: torch.Tensor | None = None,
) -> AttackResult:
    """The perturbed images of one attack (see the module docstring) and which images
    kept the prediction; ``explainer`` (the explained method) is needed by ``topk``;
    ``baselines``: those the method integrated ``x`` from, reused for its first step
    (UNI's search is not run again)."""
    if not isinstance(attack, str):
        raise ConfigError(f"attack={attack!r}: robustness_attack runs one attack at a time")
    check_attacks(attack)
    options = options or AttackOptions()
    if attack == "topk" and explainer is None:
        raise ConfigError("robustness attack='topk' needs explainer=<uni.methods.Explainer> "
                          "(the runner passes the explained method's)")
    x = x.detach()
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    attacked = _Attacked(model, x, target, _predictions(model, x, batch_size), output,
                         batch_size, image_ids, seed)
    if options.eps == 0:
        return AttackResult(x.clone(), torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
    if attack == "random":
        return _random_attack(attacked, options)
    if attack == "fgsm":
        return _fgsm_attack(attacked, options)
    return _topk_attack(attacked, options, attributions.detach(), explainer, baselines)


SCORES = ("spearman", "intersection", "linf", "l2", "skipped")


def attack_labels(attack: str | Sequence[str] = ATTACK, eps: float | Sequence[float] = EPS,
                  norm: str = NORM) -> list[tuple[str, float]]:
    """``(label, budget)`` per attack and budget: the label is the attack's name, with the
    budget (:func:`budget_name`) for a sweep (a list of budgets) or an L2 budget."""
    sweep = not (isinstance(eps, (int, float)) and norm == "linf")
    return [(f"{a}_{budget_name(e, norm)}" if sweep else a, e)
            for a in attack_list(attack) for e in budgets(eps)]


def metric_names(attack: str | Sequence[str] = ATTACK, eps: float | Sequence[float] = EPS,
                 norm: str = NORM) -> list[str]:
    """The keys :func:`robustness` returns, for one attack or a list of them, per budget."""
    return [f"robustness_{label}_{kind}" for label, _ in attack_labels(attack, eps, norm)
            for kind in SCORES]


def skip_note(name: str, values: dict[str, torch.Tensor], i: int) -> str | None:
    """Why record ``name``'s value of image ``i`` is not finite, from its attack's
    ``_skipped`` value among ``values`` (what :func:`robustness` returned): the label was
    not kept, or the attack needs a straight-line surrogate; ``None``: a numerical fault."""
    skipped = values.get(f"{name.rsplit('_', 1)[0]}_skipped")
    if skipped is None:
        return None
    if float(skipped[i]) == 1:
        return "label not kept under attack"
    if not math.isfinite(float(skipped[i])):
        return "not applicable: the attack needs a straight-line surrogate"
    return None


def compile_conflict(hvp: str | None = None, **_) -> str | None:
    """Why an entry with these options cannot run on a ``runtime.compile``'d model:
    ``hvp=autograd`` differentiates twice, which compiled modules do not."""
    return "hvp=autograd" if hvp == "autograd" else None


def compare_maps(a: torch.Tensor, b: torch.Tensor, k: int = K,
                 compare: str = COMPARE) -> tuple[torch.Tensor, torch.Tensor]:
    """Spearman correlation and top-``k`` intersection of the maps :func:`comparable_map`
    makes (magnitude by default)."""
    a, b = comparable_map(a, compare).flatten(1), comparable_map(b, compare).flatten(1)
    return spearman(a, b).to(a.device), top_k_intersection(a, b, k)


def robustness(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    attack: str | Sequence[str] = ATTACK,
    eps: float | Sequence[float] = EPS,
    norm: str = NORM,
    compare: str = COMPARE,
    to_budget: bool = TO_BUDGET,
    steps: int = STEPS,
    k: int = K,
    softplus_beta: float = SOFTPLUS_BETA,
    halvings: int = HALVINGS,
    step_size: float | None = None,
    surrogate_steps: int | None = SURROGATE_STEPS,
    hvp: str = HVP,
    fd_step: float = FD_STEP,
    noise_draws: str = NOISE_DRAW,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
    baselines: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image robustness values under each attack of ``attack`` (one name or a list);
    keys :func:`metric_names` (``score_input`` is accepted for the common metric
    signature and not needed). ``explainer``: the explained method
    (:class:`uni.methods.Explainer`), which explains ``x + delta``; ``baselines``: those
    of ``attributions`` (the runner passes them), reused by the top-k attack's first step.

    ``noise_draws``: whether a method with random draws (a noise baseline) explains
    ``x + delta`` with draws ``independent`` of those of ``x`` (default) or the ``same``
    draws (which makes it look stable by construction). The ``topk`` attack needs a
    straight-line surrogate: for a method without one (DeepLIFT, Blur IG, Guided IG) its
    values are NaN, skipped included, and recorded as not applicable."""
    attacks = check_attacks(attack, noise_draws)
    shared = dict(steps=steps, k=k, softplus_beta=softplus_beta, halvings=halvings,
                  step_size=step_size, surrogate_steps=surrogate_steps, hvp=hvp,
                  fd_step=fd_step, norm=norm, to_budget=to_budget, compare=compare)
    if explainer is None:
        raise ConfigError("robustness needs explainer=<uni.methods.Explainer> (the runner "
                          "passes the explained method's)")
    x = x.detach()
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    explain_seed = restart_seed(seed, 1) if noise_draws == "independent" else seed
    values: dict[str, torch.Tensor] = {}
    for label, budget in attack_labels(attacks, eps, norm):
        name = label.split("_", 1)[0]
        if name == "topk" and not explainer.straight_line:
            values.update({f"robustness_{label}_{kind}": torch.full(
                (x.shape[0],), float("nan"), device=x.device) for kind in SCORES})
            continue
        options = AttackOptions(eps=budget, **shared)
        result = robustness_attack(
            model, x, attributions, target, explainer=explainer, attack=name, options=options,
            output=output, batch_size=batch_size, image_ids=image_ids, seed=seed,
            baselines=baselines,
        )
        values.update(_scores(x, attributions, target, result, label, explainer, options,
                              image_ids, explain_seed))
    return values


def _scores(x, attributions, target, result: AttackResult, label: str, explainer: Explainer,
            options: AttackOptions, image_ids, seed: int) -> dict[str, torch.Tensor]:
    """Compare ``A(x)`` with ``A(x_adv)`` (explained with ``seed``) where the prediction
    was kept; NaN elsewhere. ``label``: the attack's label in the record names."""
    n = x.shape[0]
    names = [f"robustness_{label}_{kind}" for kind in SCORES]
    nan = torch.full((n,), float("nan"), device=x.device)
    values = {name: nan.clone() for name in names}
    values[names[4]] = (~result.kept).float()
    index = result.kept.nonzero().flatten()
    if index.numel():
        adversarial = explainer(result.x_adv[index], target[index],
                                image_ids=[image_ids[i] for i in index.tolist()],
                                seed=seed).attributions
        rho, overlap = compare_maps(attributions[index], adversarial, options.k,
                                    options.compare)
        delta = (result.x_adv[index] - x[index]).flatten(1)
        values[names[0]][index] = rho.float()
        values[names[1]][index] = overlap
        values[names[2]][index] = delta.abs().amax(1).float()
        values[names[3]][index] = delta.norm(dim=1).float()
    return values


register_metric("robustness", robustness, catalog=CATALOG, record_names=metric_names,
                validate=validate_options, skip_note=skip_note,
                compile_conflict=compile_conflict)

"""The path-integral core, written once (Sundararajan et al. 2017, "Axiomatic Attribution
for Deep Networks").

``A_i = (x_i - x'_i) * sum_k w_k dF_c/dx_i (x' + alpha_k (x - x'))`` along the straight
line from a baseline ``x'`` to ``x``. Gradients for all images x all steps are computed in
chunks of up to ``internal_batch_size`` rows of one image, one model call per chunk (so an
image's gradients are the same in any batch). Every IG variant only supplies its baseline
(:mod:`uni.methods.baselines`, :mod:`uni.methods.unlearning`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from uni.errors import ConfigError
from uni.methods.idgi import IDGIAccumulator
from uni.models import class_score

RULES = ("left", "right", "middle", "trapezoid")
# how :func:`path_hvp` gets Hessian-vector products: central or forward differences of
# gradients, or exact double backward
HVPS = ("finite_difference", "forward_difference", "autograd")
HVP = "forward_difference"
# pixel units: against autograd on three development images (EfficientNet-Lite0 surrogate,
# 8 points), forward differences err 0.5-0.7% at 3e-5 (1% at 1e-5 and 1e-4), central
# ones 0.3% (0.1% at 1e-4); benchmarks/topk_attack.py
FD_STEP = 3e-5


def riemann_rule(steps: int, rule: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Path positions ``alpha_k`` and weights ``w_k`` (summing to 1) of a Riemann rule.

    ``right``: alpha_k = k/B; ``left``: (k-1)/B; ``middle``: (k-1/2)/B; ``trapezoid``:
    B points from 0 to 1, end points weighted 1/(2(B-1)). Captum's ``riemann_trapezoid``
    weights its end points 1/(2B) and the rest 1/B, so its weights sum to (B-1)/B; ours
    sum to 1 (completeness), and differ from Captum's by exactly that factor.
    """
    if steps < 1:
        raise ConfigError(f"steps={steps} must be a positive integer")
    if rule not in RULES:
        raise ConfigError(f"rule={rule!r} is not one of {list(RULES)}")
    k = torch.arange(steps, dtype=torch.float64)
    weights = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    if rule == "right":
        alphas = (k + 1) / steps
    elif rule == "left":
        alphas = k / steps
    elif rule == "middle":
        alphas = (k + 0.5) / steps
    else:
        if steps < 2:
            raise ConfigError("rule='trapezoid' needs steps >= 2")
        alphas = k / (steps - 1)
        weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
    return alphas, weights


@dataclass
class Attribution:
    """What a method returns: attributions shaped like ``x``, the baselines of a path
    method (``None`` otherwise), per-image diagnostics (1-D tensors, one per image) and,
    for path methods, ``F_c`` along the path ``(N, steps + 2)``: baseline, points, input."""

    attributions: torch.Tensor
    baselines: torch.Tensor | None = None
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    path_scores: torch.Tensor | None = None


def straight_line(
    x: torch.Tensor, baseline: torch.Tensor, alphas: torch.Tensor,
    shift: torch.Tensor | None = None,
):
    """``points_of(i, k) = x'_i + alpha_k (x_i - x'_i)`` (+ ``shift_i``, for finite
    differences) for :func:`path_gradients`."""
    delta = x - baseline

    def points_of(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        points = baseline[i] + alphas[k].view(-1, 1, 1, 1) * delta[i]
        return points if shift is None else points + shift[i]

    return points_of


def path_gradients(
    model: torch.nn.Module,
    points_of,
    num_images: int,
    target: torch.Tensor,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    output: str = "prob",
    internal_batch_size: int = 4,
    create_graph: bool = False,
    velocity_of=None,
    on_rows=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted sum over path points of ``dF_c/dpoint`` and ``F_c`` at every point.

    ``points_of(image_index, step_index)`` returns the path points for those rows (a
    generic path: straight line, Blur IG's scale space, ...). Returns the gradient sum
    shaped like one point per image and the scores, shape ``(num_images, steps)``.
    ``weights``: ``(steps,)``, or ``(m, steps)`` for ``m`` weighted sums of the same
    gradients at once (the sum is then ``(m, num_images, ...)``).
    ``alphas`` only sets the number of steps (``points_of`` places the points).
    ``velocity_of(image_index, step_index)``, when given, multiplies each gradient
    elementwise before the sum: the path's derivative ``d gamma / d t`` at those points,
    for a path that is not a straight line (a straight line's constant ``x - x'`` is
    applied by the caller). ``create_graph=True`` keeps the result differentiable with
    respect to whatever the points depend on (for attacks on the attribution).
    ``on_rows(image_index, step_index, gradient, scores)``, when given, sees each chunk's
    gradients before the velocity is applied (IDGI: :mod:`uni.methods.idgi`).
    """
    device = target.device
    steps = alphas.numel()
    rows = num_images * steps
    image_index = torch.arange(num_images, device=device).repeat_interleave(steps)
    step_index = torch.arange(steps, device=device).repeat(num_images)
    stacked = weights.dim() == 2
    weights = weights.to(device).view(-1, steps)  # (m, steps)
    grad_sum = None
    scores = torch.empty(num_images, steps, device=device)
    chunk = max(1, internal_batch_size)
    # a chunk never spans two images: an image's gradients come from the same model calls
    # in any batch (batched kernels round differently; UNI's baselines sit near ReLU6 kinks)
    starts = [s for first in range(0, rows, steps) for s in range(first, first + steps, chunk)]
    for start in starts:
        end = min(start + chunk, start - start % steps + steps)
        i = image_index[start:end]
        k = step_index[start:end]
        with torch.enable_grad():
            points = points_of(i, k)
            if not create_graph:
                points = points.detach().requires_grad_(True)
            values = class_score(model(points), target[i], output)
            (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
        if on_rows is not None:
            on_rows(i, k, grad, values)
        if velocity_of is not None:
            grad = grad * velocity_of(i, k)
        weighted = (grad.unsqueeze(0)
                    * weights[:, k].view(*weights.shape[:1], -1, *[1] * (grad.dim() - 1)))
        weighted = weighted.float()
        if grad_sum is None:
            grad_sum = torch.zeros(
                (weights.shape[0], num_images, *grad.shape[1:]), device=device,
                dtype=torch.float32,
            )
        if create_graph:
            grad_sum = grad_sum.index_add(1, i, weighted)
        else:
            grad_sum.index_add_(1, i, weighted)
        scores[i, k] = values.detach().float()
    return (grad_sum if stacked else grad_sum[0]), scores


def path_hvp(
    model: torch.nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    vector: torch.Tensor,
    target: torch.Tensor,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    output: str = "prob",
    internal_batch_size: int = 4,
    hvp: str = HVP,
    fd_step: float = FD_STEP,
    gradient_sum: torch.Tensor | None = None,
) -> torch.Tensor:
    """``sum_k weights_k H(p_k) vector`` per image, ``p_k = x' + alphas_k (x - x')`` and
    ``H`` the Hessian of ``F_c`` in the input, chunked (no graph across chunks):
    ``hvp="autograd"`` (exact double backward), ``"finite_difference"`` (central
    differences of :func:`path_gradients` at ``+-h vector``, two gradients per point) or
    ``"forward_difference"`` (``(g(p_k + h vector) - g(p_k)) / h``, one gradient per
    point: ``gradient_sum``, the ``weights``-weighted sum of the gradients at ``p_k``,
    comes from the caller's attribution pass); ``h`` is scaled so that the largest
    displacement is ``fd_step`` pixel units."""
    n = x.shape[0]
    if hvp in ("finite_difference", "forward_difference"):
        size = vector.flatten(1).abs().amax(1).clamp_min(1e-30)
        h = (fd_step / size).view(-1, 1, 1, 1)
        plus, _ = path_gradients(model, straight_line(x, baseline, alphas, h * vector), n,
                                 target, alphas, weights, output, internal_batch_size)
        if hvp == "forward_difference":
            if gradient_sum is None:
                raise ConfigError("hvp='forward_difference' needs gradient_sum (the weighted "
                                  "gradients at the path points)")
            return (plus - gradient_sum) / h
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


def integrated_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    target: torch.Tensor,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    create_graph: bool = False,
    end_scores: tuple[torch.Tensor, torch.Tensor] | None = None,
    idgi: bool = False,
) -> Attribution:
    """IG along the straight line from ``baseline`` to ``x``, with path diagnostics.

    With ``create_graph=True`` the attributions stay differentiable with respect to ``x``
    (``x`` must require grad; ``baseline`` is treated as given). ``end_scores``:
    ``(F_c(x'), F_c(x))`` when the caller has them already (else one forward pass).
    ``idgi``: IDGI's projection of the same gradients (:mod:`uni.methods.idgi`)."""
    alphas, weights = riemann_rule(steps, rule)
    alphas = alphas.to(x.device, x.dtype)
    delta = x - baseline
    accumulator = IDGIAccumulator(x.shape[0], steps) if idgi else None
    grad_sum, scores = path_gradients(
        model, straight_line(x, baseline, alphas), x.shape[0], target, alphas,
        weights.to(x.dtype), output, internal_batch_size, create_graph,
        on_rows=accumulator.add if idgi else None,
    )
    if end_scores is None:
        with torch.no_grad():
            ends = class_score(model(torch.cat([baseline, x]).detach()), target.repeat(2), output)
        end_scores = ends[: x.shape[0]], ends[x.shape[0] :]
    at_baseline, at_input = (s.detach().to(scores.dtype) for s in end_scores)
    attributions = (accumulator.result(at_baseline, at_input).to(x.dtype) if idgi
                    else delta * grad_sum)
    diagnostics = path_diagnostics(attributions, at_baseline, at_input, scores)
    # the path's length, for every straight line (what drives UNI: uni.analysis.what_drives_uni)
    offset = delta.detach().flatten(1)
    diagnostics.update(dist_l2=offset.norm(dim=1), dist_linf=offset.abs().amax(1))
    along = torch.cat([at_baseline[:, None], scores, at_input[:, None]], dim=1)
    return Attribution(attributions, baseline.detach(), diagnostics, along)


def path_diagnostics(
    attributions: torch.Tensor,
    score_baseline: torch.Tensor,
    score_input: torch.Tensor,
    path_scores: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """docs/design.md §3: ``F_c`` at the baseline and input, the relative completeness gap
    ``|sum A - (F_c(x) - F_c(x'))| / |F_c(x) - F_c(x')|`` and path monotonicity (fraction
    of consecutive points ``x', path..., x`` where ``F_c`` does not decrease)."""
    difference = score_input - score_baseline
    total = attributions.flatten(1).sum(1)
    gap = (total - difference).abs() / difference.abs()
    along = torch.cat([score_baseline[:, None], path_scores, score_input[:, None]], dim=1)
    monotone = (along.diff(dim=1) >= 0).float().mean(1)
    return {
        "score_baseline": score_baseline.detach(),
        "score_input": score_input.detach(),
        "completeness_gap": gap.detach(),
        "monotonicity": monotone.detach(),
    }

"""Guided IG (Kapishnikov, Venugopalan, Avci, Wedin, Terry & Bolukbasi 2021, "Guided
Integrated Gradients: an Adaptive Path Method for Removing Noise", CVPR).

An adaptive path from a baseline ``x'`` (black by default, any static baseline of
:mod:`uni.methods.baselines`) to ``x``: at each of ``steps`` steps the gradient is taken
at the current point, and the features with the smallest absolute gradient (a
``fraction`` of all features per round, by the ``lower`` quantile) move towards ``x``
first, until the L1 distance to ``x`` has shrunk by ``1/steps`` of the total. No feature
may fall behind, or run ahead of, the straight line by more than ``max_dist`` (in path
position ``alpha``). ``A`` accumulates ``(point change) * gradient`` along the path, so
``sum A`` approximates ``F_c(x) - F_c(x')``. Definitions and defaults follow the
reference implementation (PAIR ``saliency`` 0.2.x, ``GuidedIG.GetMask``: ``fraction``
0.25, ``max_dist`` 0.02; ``steps`` 200 there, ``attribution.steps`` here).

All images walk their paths in lockstep; the selection rounds within a step run as tensor
operations over the images still short of their target. The path state is float64 (as in
the reference); the model sees it in the input's dtype.

Batch invariance: Guided IG is not continuous in the gradients (which features are
"smallest" changes with float32 rounding, and so does the whole path after that), and a
model call on a batch rounds differently from one on a single image (other convolution
kernels: gradients ~1e-6 apart). Explained in a batch, one EfficientNet-Lite0 photo's
attributions differed from the same photo explained alone by 31-68%. So each image's
gradients come from a model call on that image's points alone (:func:`gradient_function`):
an image's attributions are the same in any batch, and equal PAIR's alone (2e-8).
"""

from __future__ import annotations

import math

import torch

from uni.errors import ConfigError
from uni.methods.baselines import BASELINES
from uni.methods.idgi import IDGIAccumulator
from uni.methods.path import Attribution, path_diagnostics, path_gradients
from uni.models import class_score

FRACTION = 0.25  # PAIR saliency 0.2.x defaults (GuidedIG.GetMask)
MAX_DIST = 0.02
CLOSE = 1e-9  # relative and absolute tolerance for "target L1 distance reached"
MAX_ROUNDS = 10_000  # selection rounds per step; a safeguard, far above what paths need


def _close(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``math.isclose`` elementwise with ``rel_tol = abs_tol = CLOSE``."""
    return (a - b).abs() <= torch.maximum(CLOSE * torch.maximum(a.abs(), b.abs()),
                                          torch.full_like(a, CLOSE))


def guided_path(
    gradient_at,
    x: torch.Tensor,
    baseline: torch.Tensor,
    steps: int,
    fraction: float = FRACTION,
    max_dist: float = MAX_DIST,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Guided IG attributions ``(N, C, H, W)`` (float64) and the scores ``gradient_at``
    returned at each step. ``gradient_at(points)`` maps the current points (``(N, C, H,
    W)``, float64) to ``(gradients, scores)`` for every image."""
    shape = x.shape
    end = x.detach().flatten(1).to(torch.float64)
    start = baseline.detach().flatten(1).to(torch.float64)
    span = end - start
    moving = span != 0
    total = span.abs().sum(1)
    current = start.clone()
    attributions = torch.zeros_like(end)
    features = end.shape[1]
    # np.quantile(..., method="lower"): the floor(q (d - 1))-th smallest value (0-based)
    rank = min(features, math.floor(fraction * (features - 1)) + 1)
    scores = []
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=end.device)
    for step in range(steps):
        gradient, score = gradient_at(current.view(shape))
        scores.append(score)
        gradient = gradient.detach().flatten(1).to(torch.float64)
        alpha = (step + 1) / steps
        low, high = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_low, x_high = start + span * low, start + span * high
        goal = total * (1 - (step + 1) / steps)
        ranked = gradient.abs()
        active = total > 0  # an image equal to its baseline keeps zero attributions
        for _ in range(MAX_ROUNDS):
            if not active.any():
                break
            rows = active.nonzero().flatten()
            x_now, lo, hi = current[rows], x_low[rows], x_high[rows]
            before = x_now.clone()
            position = torch.where(moving[rows], (x_now - start[rows]) / span[rows].where(
                moving[rows], torch.ones_like(x_now)), torch.full_like(x_now, high))
            x_now = torch.where(position < low, lo, x_now)  # catch up with the window
            distance = (x_now - end[rows]).abs().sum(1)
            reached = _close(goal[rows], distance)
            # features at the window's front are not selected again this step
            ranked[rows] = torch.where(x_now == hi, inf, ranked[rows])
            magnitude = ranked[rows]
            threshold = magnitude.kthvalue(rank, dim=1, keepdim=True).values
            selected = (magnitude <= threshold) & (magnitude != inf) & ~reached[:, None]
            room = ((x_now - hi).abs() * selected).sum(1)
            gamma = torch.where(room > 0, (distance - goal[rows]) / room.where(
                room > 0, torch.ones_like(room)), inf)
            full = (gamma > 1)[:, None]
            x_now = torch.where(selected & full, hi, x_now)
            x_now = torch.where(selected & ~full, x_now + (hi - x_now) * gamma[:, None], x_now)
            attributions[rows] += (x_now - before) * gradient[rows]
            current[rows] = x_now
            still = torch.zeros_like(active)
            still[rows] = ~reached & (gamma > 1)
            active = still
        else:
            raise RuntimeError(f"guided_ig: step {step} did not reach its L1 target in "
                               f"{MAX_ROUNDS} selection rounds")
    return attributions.view(shape), scores


def gradient_function(model: torch.nn.Module, target: torch.Tensor, output: str,
                      dtype: torch.dtype):
    """``gradient_at(points) -> (gradients, scores)`` for :func:`guided_path`: one model
    call per image, so that no image's path depends on the others' (module docstring)."""
    one = torch.ones(1, dtype=torch.float64, device=target.device)

    def gradient_at(points: torch.Tensor):
        parts = [path_gradients(model, lambda i, k, p=p: p[None].to(dtype), 1, t[None], one, one,
                                output, 1)
                 for p, t in zip(points, target)]
        return torch.cat([g for g, _ in parts]), torch.cat([s for _, s in parts])

    return gradient_at


def guided_ig(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    baseline: str = "black",
    steps: int = 32,
    fraction: float = FRACTION,
    max_dist: float = MAX_DIST,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
    idgi: bool = False,
    **baseline_options,
) -> Attribution:
    """Guided IG attributions for a batch, from the static ``baseline`` (``baseline_options``
    go to it, e.g. ``sigma`` for ``blur``); ``idgi``: IDGI's projection of the same
    gradients (:mod:`uni.methods.idgi`). ``path_scores``: ``F_c`` at the baseline, at the
    ``steps`` points where gradients were taken (the first is the baseline) and at ``x``.
    ``rule`` must be ``right`` (the default): the adaptive path places its own points.
    ``internal_batch_size`` is taken for the shared signature and not used: each model
    call holds one image's point (batch invariance, module docstring)."""
    if baseline not in BASELINES:
        raise ConfigError(f"guided_ig: baseline={baseline!r} is not one of {sorted(BASELINES)}")
    if steps < 1:
        raise ConfigError(f"guided_ig: steps={steps} must be a positive integer")
    if not 0 < fraction <= 1 or not 0 <= max_dist <= 1:
        raise ConfigError(f"guided_ig: fraction={fraction} must be in (0, 1] and "
                          f"max_dist={max_dist} in [0, 1]")
    if rule != "right":
        raise ConfigError(f"guided_ig: rule={rule!r}; the adaptive path places its own "
                          "points (leave rule at its default)")
    start = BASELINES[baseline](x, image_ids=image_ids, seed=seed, draw=0, **baseline_options)
    n = x.shape[0]
    per_image = gradient_function(model, target, output, x.dtype)
    accumulator = IDGIAccumulator(n, steps) if idgi else None
    images = torch.arange(n, device=x.device)
    step = [0]  # guided_path takes one gradient per step, in order

    def gradient_at(points: torch.Tensor):
        gradient, score = per_image(points)
        if idgi:  # one row per image, this step's index
            accumulator.add(images, torch.full_like(images, step[0]), gradient, score[:, 0])
            step[0] += 1
        return gradient, score

    attributions, scores = guided_path(gradient_at, x, start, steps, fraction, max_dist)
    along = torch.cat(scores, dim=1)
    with torch.no_grad():
        score_input = class_score(model(x), target, output).float()
    score_baseline = along[:, 0]
    if idgi:
        attributions = accumulator.result(score_baseline, score_input)
    attributions = attributions.to(x.dtype)
    diagnostics = path_diagnostics(attributions, score_baseline, score_input, along)
    path_scores = torch.cat([score_baseline[:, None], along, score_input[:, None]], dim=1)
    return Attribution(attributions, start.detach(), diagnostics, path_scores)

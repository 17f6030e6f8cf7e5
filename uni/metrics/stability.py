"""Riemann stability of path attributions (docs/design.md §3; the claim of Choi, Duplessis &
Belongie 2025, "Unlearning-based Neural Interpretations", ICLR, that UNI is already
stable at very few integration steps).

The method's baseline ``x'`` is computed once per image; then the straight-line integral
(Sundararajan et al. 2017) from ``x'`` to ``x`` is approximated with ``B`` Riemann steps
(the method's ``rule``) for every ``B`` in ``budgets`` and compared with ``B = reference``:

- ``stability_l1@B``: ``||A_B - A_ref||_1 / ||A_ref||_1`` over all channels and pixels;
- ``stability_spearman@B``: Spearman rank correlation of the channel-summed maps;
- ``stability_gap@B``: the relative completeness gap
  ``|sum A_B - (F_c(x) - F_c(x'))| / |F_c(x) - F_c(x')|`` (also reported at the reference).

All budgets share their gradient evaluations: every distinct path position ``alpha`` is
evaluated once (for the ``right`` and ``left`` rules and power-of-two budgets, the
reference's 256 positions contain all others), so the metric costs ``reference`` (not
``sum(budgets) + reference``) gradient evaluations per image and baseline draw.

Noise baselines with ``samples > 1`` (and Expected Gradients' drawn baselines) average
the attributions over the draws, as the method does. DeepLIFT has no integration steps,
and Blur IG, Guided IG and Expected Gradients with ``points: random`` no straight-line
Riemann sum: every value is NaN (n/a) for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.errors import ConfigError
from uni.methods import Explainer
from uni.methods.path import riemann_rule
from uni.metrics._common import batched_scores, pixel_map, positive_int, spearman
from uni.models import class_score

BUDGETS = (1, 2, 4, 8, 16, 32, 64, 128)
REFERENCE = 256


def metric_names(budgets: Sequence[int] = BUDGETS, reference: int = REFERENCE) -> list[str]:
    """The keys :func:`stability` returns, in order."""
    names = [f"stability_{kind}@{b}" for b in budgets for kind in ("l1", "spearman", "gap")]
    return names + [f"stability_gap@{reference}"]


def multi_budget_attributions(
    model: torch.nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    target: torch.Tensor,
    budgets: Sequence[int],
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
) -> dict[int, torch.Tensor]:
    """IG from ``baseline`` to ``x`` with ``B`` Riemann steps for every ``B`` in
    ``budgets``, each distinct path position evaluated once. Equals
    ``integrated_gradients(model, x, baseline, target, B, rule, output).attributions``
    for every ``B``."""
    rules = {b: riemann_rule(b, rule) for b in budgets}
    all_alphas = torch.cat([alphas for alphas, _ in rules.values()])
    unique, inverse = torch.unique(all_alphas, return_inverse=True)  # exact float matches
    weight = torch.zeros(len(rules), unique.numel(), dtype=torch.float64)
    offset = 0
    for row, (_, weights) in enumerate(rules.values()):
        weight[row].index_add_(0, inverse[offset : offset + weights.numel()], weights)
        offset += weights.numel()
    weight = weight.to(x.device, torch.float32)
    alphas = unique.to(x.device, x.dtype)

    n = x.shape[0]
    delta = (x - baseline).detach()
    sums = torch.zeros(len(rules), *x.shape, device=x.device, dtype=torch.float32)
    image_index = torch.arange(n, device=x.device).repeat_interleave(alphas.numel())
    alpha_index = torch.arange(alphas.numel(), device=x.device).repeat(n)
    chunk = max(1, int(internal_batch_size))
    for start in range(0, image_index.numel(), chunk):
        i, k = image_index[start : start + chunk], alpha_index[start : start + chunk]
        with torch.enable_grad():
            points = (baseline[i] + alphas[k].view(-1, 1, 1, 1) * delta[i]).detach()
            points.requires_grad_(True)
            values = class_score(model(points), target[i], output)
            (grad,) = torch.autograd.grad(values.sum(), points)
        grad = grad.float()
        for row in range(len(rules)):
            sums[row].index_add_(0, i, grad * weight[row, k].view(-1, 1, 1, 1))
    return {b: delta * sums[row].to(x.dtype) for row, b in enumerate(rules)}


def validate_options(
    budgets: Sequence[int] = BUDGETS, reference: int = REFERENCE
) -> tuple[list[int], int]:
    """Raise :class:`ConfigError` for option values that cannot work; returns the budgets
    (duplicates removed) and the reference as ints."""
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__") or not budgets:
        raise ConfigError(f"budgets={budgets!r} must be a non-empty list of positive integers")
    budgets = [positive_int("budgets[]", b) for b in budgets]
    reference = positive_int("reference", reference)
    return list(dict.fromkeys(budgets)), reference


def stability(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    budgets: Sequence[int] = BUDGETS,
    reference: int = REFERENCE,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
    baselines: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image Riemann stability of the method ``explainer`` explains (the runner
    passes the explained method as a :class:`uni.methods.Explainer`; ``attributions`` is
    not used: every budget, the reference included, is recomputed from the same
    baseline, along the method's ``rule``). ``baselines``: the ones the method integrated
    from, when the caller has them (its first draw, reused when it draws once).
    Keys: :func:`metric_names`."""
    if explainer is None:
        raise ConfigError("stability needs explainer=<uni.methods.Explainer> (the runner "
                          "passes the explained method's)")
    budgets, reference = validate_options(budgets, reference)
    names = metric_names(budgets, reference)
    n = x.shape[0]
    if not explainer.straight_line:  # DeepLIFT, Blur IG, Guided IG: no Riemann steps
        # along a straight line to vary
        return {name: torch.full((n,), float("nan"), device=x.device) for name in names}
    rule = explainer.option("rule")
    internal_batch_size = int(explainer.option("internal_batch_size"))
    baselines, draws = explainer.baselines(x, target, image_ids=image_ids, seed=seed,
                                           first_draw=baselines)
    xs, targets = x.repeat(draws, 1, 1, 1), target.repeat(draws)
    steps = list(dict.fromkeys([*budgets, reference]))
    by_budget = multi_budget_attributions(
        model, xs, baselines, targets, steps, rule, output, internal_batch_size
    )
    if score_input is None:
        score_input = batched_scores(model, x, target, output, batch_size)
    score_baseline = batched_scores(model, baselines, targets, output, batch_size)
    difference = score_input.float().to(x.device).repeat(draws) - score_baseline

    def gap(a: torch.Tensor) -> torch.Tensor:
        per_draw = (a.flatten(1).sum(1).float() - difference).abs() / difference.abs()
        return per_draw.view(draws, n).mean(0)

    def mean_over_draws(a: torch.Tensor) -> torch.Tensor:
        return a.view(draws, *x.shape).mean(0).float()

    ref = mean_over_draws(by_budget[reference])
    ref_norm = ref.abs().flatten(1).sum(1)
    values: dict[str, torch.Tensor] = {}
    for b in budgets:
        a = mean_over_draws(by_budget[b])
        values[f"stability_l1@{b}"] = (a - ref).abs().flatten(1).sum(1) / ref_norm
        values[f"stability_spearman@{b}"] = spearman(
            pixel_map(a).flatten(1), pixel_map(ref).flatten(1)
        ).to(x.device)
        values[f"stability_gap@{b}"] = gap(by_budget[b])
    values[f"stability_gap@{reference}"] = gap(by_budget[reference])
    return {name: values[name].detach() for name in names}

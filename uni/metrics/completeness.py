"""Completeness (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks",
ICML; docs/design.md §3): a path method's attributions should sum to the change of the explained
output along its path,

    ``|sum_i A_i - (F_c(x) - F_c(x'))| / |F_c(x) - F_c(x')|``   (lower is better),

scored on the stored attributions and baselines. A method whose baselines are drawn
several times (a noise baseline with ``samples > 1``, Expected Gradients) averages over
its draws, so ``F_c(x')`` is the mean over its baselines. ``n/a`` (NaN) for a method
without a baseline (the trivial maps) and for one whose several draws do not lie on
straight lines (Expected Gradients with ``points=random``: its draws are not kept).

The methods' own ``completeness_gap`` diagnostic is the same quantity taken from the path
pass; this metric recomputes it from what is stored, so it can be scored (and ranked)
like any other metric, on any run's attribution store.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.methods import Explainer
from uni.metrics._common import batched_scores


def completeness(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    baselines: torch.Tensor | None = None,
    explainer: Explainer | None = None,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """The relative completeness gap per image (module docstring); ``baselines``: the
    method's (first-draw) baselines, ``None`` for a method without one."""
    n = x.shape[0]
    missing = torch.full((n,), float("nan"), device=x.device)
    if baselines is None:
        return missing
    draws = 1
    if explainer is not None and (explainer.option("samples") or 1) > 1:
        if not explainer.straight_line:
            return missing
        baselines, draws = explainer.baselines(x, target, image_ids=image_ids, seed=seed,
                                               first_draw=baselines)
    at_baseline = batched_scores(model, baselines, target.repeat(draws), output, batch_size)
    at_baseline = at_baseline.view(draws, n).double().mean(0)
    if score_input is None:
        score_input = batched_scores(model, x, target, output, batch_size)
    difference = score_input.double() - at_baseline
    total = attributions.flatten(1).double().sum(1)
    return ((total - difference).abs() / difference.abs()).float()

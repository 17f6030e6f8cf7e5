"""Integrated Gradients from a static baseline (black, white, blur, uniform, gaussian)."""

from __future__ import annotations

import torch

from uni.errors import ConfigError
from uni.methods.baselines import BASELINES, RANDOM_BASELINES
from uni.methods.path import Attribution, integrated_gradients


def static_baselines(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    baseline: str = "black",
    samples: int = 1,
    image_ids=(),
    seed: int = 0,
    **baseline_options,
) -> tuple[torch.Tensor, int]:
    """Every draw of a static baseline for ``x`` (``samples`` draws of a noise baseline,
    one of a fixed one), draw-major ``(draws * N, C, H, W)``, and the number of draws."""
    if baseline not in BASELINES:
        raise ConfigError(f"baseline={baseline!r} is not one of {sorted(BASELINES)}")
    if samples < 1:
        raise ConfigError(f"samples={samples} must be a positive integer")
    draws = samples if baseline in RANDOM_BASELINES else 1
    make = BASELINES[baseline]
    baselines = torch.cat(
        [make(x, image_ids=image_ids, seed=seed, draw=d, **baseline_options) for d in range(draws)]
    )
    return baselines, draws


def ig(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    baseline: str = "black",
    samples: int = 1,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
    idgi: bool = False,
    **baseline_options,
) -> Attribution:
    """IG from a static baseline; noise baselines are averaged over ``samples`` draws
    (attributions and diagnostics are means over draws; the baseline returned is the
    first draw). ``idgi``: IDGI's projection of the path's gradients."""
    baselines, draws = static_baselines(model, x, target, baseline=baseline, samples=samples,
                                        image_ids=image_ids, seed=seed, **baseline_options)
    result = integrated_gradients(
        model, x.repeat(draws, 1, 1, 1), baselines, target.repeat(draws), steps, rule, output,
        internal_batch_size, idgi=idgi,
    )
    if draws == 1:
        return result
    n = x.shape[0]
    return Attribution(
        result.attributions.view(draws, *x.shape).mean(0),
        baselines[:n],
        {k: v.view(draws, n).mean(0) for k, v in result.diagnostics.items()},
        result.path_scores.view(draws, n, -1).mean(0),
    )

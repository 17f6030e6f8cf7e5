"""Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling
for Explanation of Black-box Models", BMVC; the ``Deletion`` / ``Insertion`` of Xplique).

Pixels are ordered by their channel-summed attribution, largest first (ties in raster
order: a stable sort). In ``steps`` equal steps, the first ``floor(k * H * W / steps)``
pixels of that order (``k = 0 .. steps``) are

- **deletion**: replaced (all channels) by ``baseline_value`` (default 0, black);
- **insertion**: copied from ``x`` into a blurred copy of ``x`` (Gaussian blur of
  ``blur_sigma`` px at 224 px, scaled with the image width, as the ``ig_blur`` baseline;
  the default 5 px follows RISE's insertion blur, sigma 5 at 224 px).

The curve is ``F_c`` at the ``steps + 1`` images (the unperturbed start included) against
the fraction of pixels changed; the score is its trapezoid area on [0, 1]. Lower deletion
and higher insertion are better. Deterministic: no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from uni.errors import ConfigError
from uni.methods.baselines import blur
from uni.metrics._common import (
    batched_scores,
    descending_order,
    pixel_map,
    positive_int,
    scores_of_rows,
)

STEPS = 100
BASELINE_VALUE = 0.0
BLUR_SIGMA = 5.0  # px at 224 px (RISE's insertion blur)


def validate_options(
    steps: int = STEPS, baseline_value: float = BASELINE_VALUE, blur_sigma: float = BLUR_SIGMA
) -> int:
    """Raise :class:`ConfigError` for option values that cannot work; returns ``steps``."""
    if not isinstance(baseline_value, (int, float)) or not math.isfinite(baseline_value):
        raise ConfigError(f"baseline_value={baseline_value!r} must be a finite number")
    if not isinstance(blur_sigma, (int, float)) or not blur_sigma >= 0:
        raise ConfigError(f"blur_sigma={blur_sigma!r} must be >= 0 (px at 224 px)")
    return positive_int("steps", steps)


def pixel_counts(num_pixels: int, steps: int) -> torch.Tensor:
    """How many pixels are changed after each step ``k = 0 .. steps``: ``floor(k*HW/K)``."""
    return torch.arange(steps + 1, dtype=torch.long) * num_pixels // steps


def pixel_ranks(attributions: torch.Tensor) -> torch.Tensor:
    """``(N, H*W)``: the position of every pixel in the deletion/insertion order
    (0 = largest channel-summed attribution; ties in raster order)."""
    order = descending_order(pixel_map(attributions).flatten(1))
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def _curve(
    model: torch.nn.Module,
    start: torch.Tensor,
    end: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    output: str,
    batch_size: int,
    known: tuple[int, torch.Tensor] | None,
) -> torch.Tensor:
    """``F_c`` along ``steps + 1`` images that move the ordered pixels from ``start`` to
    ``end``: row ``k`` takes its first ``counts[k]`` pixels from ``end``, the rest from
    ``start``. ``known = (k, scores)`` supplies one column already computed."""
    n, _, height, width = start.shape
    counts = pixel_counts(height * width, steps).to(start.device)
    rank = pixel_ranks(attributions).to(start.device).view(n, 1, height, width)
    columns = [k for k in range(steps + 1) if known is None or k != known[0]]
    column_index = torch.tensor(columns, device=start.device, dtype=torch.long)
    image_of_row = torch.arange(n, device=start.device).repeat_interleave(len(columns))
    step_of_row = column_index.repeat(n)

    def perturbed(rows: slice) -> torch.Tensor:
        i, k = image_of_row[rows], step_of_row[rows]
        changed = rank[i] < counts[k].view(-1, 1, 1, 1)
        return torch.where(changed, end[i], start[i])

    scores = scores_of_rows(
        model, perturbed, target.repeat_interleave(len(columns)), output, batch_size
    ).view(n, len(columns))
    curve = torch.empty(n, steps + 1, device=start.device)
    curve[:, column_index] = scores
    if known is not None:
        curve[:, known[0]] = known[1].to(curve)
    return curve


def fractions(height: int, width: int, steps: int = STEPS) -> torch.Tensor:
    """The x-axis of the curves: fraction of pixels changed after each step, in [0, 1]."""
    return pixel_counts(height * width, steps).double() / (height * width)


def area(curve: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Trapezoid area under ``(N, steps + 1)`` curves against the fraction changed."""
    x = fractions(height, width, curve.shape[1] - 1).to(curve.device)
    return torch.trapezoid(curve.double(), x, dim=-1).float()


def _score_input(model, x, target, output, batch_size, score_input):
    if score_input is None:
        return batched_scores(model, x, target, output, batch_size)
    return score_input.detach().float()


def deletion_curve(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    baseline_value: float = BASELINE_VALUE,
    output: str = "prob",
    batch_size: int = 64,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, steps + 1)``: ``F_c`` after deleting 0, 1/steps, ..., all of the pixels."""
    steps = validate_options(steps, baseline_value=baseline_value)
    fill = torch.full_like(x, float(baseline_value))
    known = (0, _score_input(model, x, target, output, batch_size, score_input))
    return _curve(model, x, fill, attributions, target, steps, output, batch_size, known)


def insertion_curve(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 64,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, steps + 1)``: ``F_c`` after inserting 0, 1/steps, ..., all of the pixels of
    ``x`` into its blurred copy."""
    steps = validate_options(steps, blur_sigma=blur_sigma)
    blurred = blur(x, sigma=float(blur_sigma))
    known = (steps, _score_input(model, x, target, output, batch_size, score_input))
    return _curve(model, blurred, x, attributions, target, steps, output, batch_size, known)


def deletion(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    baseline_value: float = BASELINE_VALUE,
    output: str = "prob",
    batch_size: int = 64,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deletion AUC per image (lower is better). ``image_ids`` and ``seed`` are accepted for
    the common metric signature; deletion draws no random numbers."""
    curve = deletion_curve(
        model, x, attributions, target, steps=steps, baseline_value=baseline_value,
        output=output, batch_size=batch_size, score_input=score_input,
    )
    return area(curve, x.shape[-2], x.shape[-1])


def insertion(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 64,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """Insertion AUC per image (higher is better). ``image_ids`` and ``seed`` are accepted
    for the common metric signature; insertion draws no random numbers."""
    curve = insertion_curve(
        model, x, attributions, target, steps=steps, blur_sigma=blur_sigma, output=output,
        batch_size=batch_size, score_input=score_input,
    )
    return area(curve, x.shape[-2], x.shape[-1])

"""Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling
for Explanation of Black-box Models", BMVC; the ``Deletion`` / ``Insertion`` of Xplique).

Pixels are ordered by their channel-summed attribution, largest first (Xplique orders by
the channel mean: the same order; ties here in raster order, a stable sort). In ``steps``
equal steps, the first ``floor(k * H * W / steps)`` pixels of that order (``k = 0 ..
steps``) are

- **deletion**: replaced (all channels) by the ``fill`` image;
- **insertion**: copied from ``x`` into the ``canvas`` image,

where ``fill`` and ``canvas`` are named images or constants (:mod:`uni.metrics.fills`:
``black``, ``grey``, ``model_zero``, ``blur``, ``mean`` or a pixel value). The defaults are
RISE's choices: a black fill and a blurred canvas (``blur_sigma`` px at 224 px, scaled with
the width; sigma 5 as RISE's insertion blur). Xplique, which the UNI paper cites, uses 10
steps and 0.0 in the model's input space for both (``model_zero``).

The curve is ``F_c`` at the ``steps + 1`` images (the unperturbed start included) against
the fraction of pixels changed; the score is its trapezoid area on [0, 1]. Lower deletion
and higher insertion are better. Deterministic: no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.inputs import checked_metric
from uni.metrics._common import (
    batched_scores,
    descending_order,
    pixel_map,
    positive_int,
)
from uni.metrics._registry import register_metric
from uni.metrics.fills import BLUR_SIGMA, fill_image, validate_fill
from uni.metrics.score_cache import ScoreCache, perturbed_scores

PETSIUK = ('Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of '
           'Black-box Models", BMVC')
# read by uni.catalog without importing this module; the report derives insertion-deletion
CATALOG = [
    {"name": "deletion", "order": 20, "scores": [["deletion", "lower"]], "citation": PETSIUK},
    {"name": "insertion", "order": 30, "scores": [["insertion", "higher"]], "citation": PETSIUK},
    {"name": "insertion-deletion", "order": 40, "scores": [["insertion-deletion", "higher"]],
     "citation": PETSIUK, "derived_from": ["insertion", "deletion"], "combine": "difference"},
]

STEPS = 100
FILL = "black"  # deletion
CANVAS = "blur"  # insertion


def validate_options(
    steps: int = STEPS, fill=FILL, canvas=CANVAS, blur_sigma: float = BLUR_SIGMA
) -> int:
    """Raise :class:`ConfigError` for option values of deletion (``fill``) or insertion
    (``canvas``) that cannot work; returns ``steps``."""
    validate_fill(fill, blur_sigma, "fill")
    validate_fill(canvas, blur_sigma, "canvas")
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
    cache: ScoreCache | None = None,
    kind: str = "deletion",
) -> torch.Tensor:
    """``F_c`` along ``steps + 1`` images that move the ordered pixels from ``start`` to
    ``end``: row ``k`` takes its first ``counts[k]`` pixels from ``end``, the rest from
    ``start``. ``known = (k, scores)`` supplies one column already computed. With
    ``cache``, a row is keyed by ``kind`` (``deletion``: ``start`` is the image, ``end``
    the fill; ``insertion``: the other way round), the prints of the image, the fill and
    the attributions, the target and the pixel count."""
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

    def keys() -> list:
        image, fill = (start, end) if kind == "deletion" else (end, start)
        images, orders = cache.fingerprints(image), cache.fingerprints(attributions)
        fills = cache.fingerprints(fill, remember=False)
        return [(kind, images[i], fills[i], int(target[i]), orders[i], int(counts[k]))
                for i in range(n) for k in columns]

    scores = perturbed_scores(
        model, perturbed, target.repeat_interleave(len(columns)), output, batch_size,
        cache, keys,
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
    fill=FILL,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 4,
    score_input: torch.Tensor | None = None,
    cache: ScoreCache | None = None,
) -> torch.Tensor:
    """``(N, steps + 1)``: ``F_c`` after replacing 0, 1/steps, ..., all of the pixels by
    the ``fill`` image (``cache``: :mod:`uni.metrics.score_cache`)."""
    steps = validate_options(steps, fill=fill, blur_sigma=blur_sigma)
    end = fill_image(model, x, fill, blur_sigma)
    known = (0, _score_input(model, x, target, output, batch_size, score_input))
    return _curve(model, x, end, attributions, target, steps, output, batch_size, known,
                  cache, "deletion")


def insertion_curve(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    canvas=CANVAS,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 4,
    score_input: torch.Tensor | None = None,
    cache: ScoreCache | None = None,
) -> torch.Tensor:
    """``(N, steps + 1)``: ``F_c`` after inserting 0, 1/steps, ..., all of the pixels of
    ``x`` into the ``canvas`` image (``cache``: :mod:`uni.metrics.score_cache`)."""
    steps = validate_options(steps, canvas=canvas, blur_sigma=blur_sigma)
    start = fill_image(model, x, canvas, blur_sigma)
    known = (steps, _score_input(model, x, target, output, batch_size, score_input))
    return _curve(model, start, x, attributions, target, steps, output, batch_size, known,
                  cache, "insertion")


def deletion(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    fill=FILL,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
    cache: ScoreCache | None = None,
) -> torch.Tensor:
    """Deletion AUC per image (lower is better). ``image_ids`` and ``seed`` are accepted for
    the common metric signature; deletion draws no random numbers."""
    curve = deletion_curve(
        model, x, attributions, target, steps=steps, fill=fill, blur_sigma=blur_sigma,
        output=output, batch_size=batch_size, score_input=score_input, cache=cache,
    )
    return area(curve, x.shape[-2], x.shape[-1])


def insertion(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = STEPS,
    canvas=CANVAS,
    blur_sigma: float = BLUR_SIGMA,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
    cache: ScoreCache | None = None,
) -> torch.Tensor:
    """Insertion AUC per image (higher is better). ``image_ids`` and ``seed`` are accepted
    for the common metric signature; insertion draws no random numbers."""
    curve = insertion_curve(
        model, x, attributions, target, steps=steps, canvas=canvas, blur_sigma=blur_sigma,
        output=output, batch_size=batch_size, score_input=score_input, cache=cache,
    )
    return area(curve, x.shape[-2], x.shape[-1])


register_metric("deletion", deletion, catalog=CATALOG, validate=validate_options,
                output_per_entry=True, figure_curve=checked_metric(deletion_curve))
register_metric("insertion", insertion, catalog=CATALOG, validate=validate_options,
                output_per_entry=True, figure_curve=checked_metric(insertion_curve))
register_metric("insertion-deletion", catalog=CATALOG)

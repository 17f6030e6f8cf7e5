"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent
and Efficient Evaluation Strategy for Attribution Methods", ICML).

Deletion and insertion fill removed pixels with a constant or a blur, whose shape leaks
which pixels were removed (and so the class) to the model. ROAD fills them instead by
**noisy linear imputation**: each removed pixel is the weighted mean of its 8 neighbours
(weight 1/6 for the 4 direct neighbours, 1/12 for the diagonals; neighbours outside the
image drop out), solved jointly for all removed pixels as one sparse linear system per
image (one right-hand side per channel), plus Gaussian noise of standard deviation
``noise`` (0.01, as published) on the removed pixels only.

Pixels are ordered by their channel-summed attribution (as deletion / insertion; ties in
raster order). At each removal percentage ``p`` of :data:`PERCENTAGES` (the paper's 10 %,
20 %, ..., 90 %):

- **MoRF** (most relevant first) removes the pixels with the largest attribution;
- **LeRF** (least relevant first) removes as many with the smallest;

as many as `grad-cam`'s percentile threshold removes of distinct values
(:func:`removed_count`, about ``p * HW / 100``).

Records per image: ``road_morf`` and ``road_lerf``, the mean of ``F_c`` over the
percentages (the area under each curve per unit of removal, as `grad-cam`'s
``ROADMostRelevantFirstAverage`` / ``ROADLeastRelevantFirstAverage`` plus ``F_c(x)``;
lower MoRF and higher LeRF are better); ``road_combined = (LeRF - MoRF) / 2`` (grad-cam's
``ROADCombined``, higher is better); and ``road_consistency``, the fraction of
percentages at which the LeRF image keeps more of ``F_c`` than the MoRF image (1: the two
orders agree about which pixels matter, the paper's MoRF/LeRF consistency per image).
The noise is keyed on ``(seed, image_id, order, percentage)`` (:mod:`uni.rng`).

The sparse solves run on the CPU, one per perturbed image, on as many threads as torch's
intra-op pool has for a CPU run and on every core the process may use for a GPU run
(:func:`imputation_threads`; SuperLU releases the GIL, and the values do not depend on
the thread count).

The imputation runs in pixel space [0, 1], where the models of this project take their
inputs; the published code imputes the tensors the model takes (normalised ones), so
there the same ``noise`` is ``noise * std`` in pixel units (0.005 for EfficientNet-Lite).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from uni import rng
from uni.errors import ConfigError
from uni.metrics._registry import register_metric
from uni.metrics.deletion_insertion import pixel_ranks
from uni.metrics.score_cache import ScoreCache, perturbed_scores

CATALOG = [{  # read by uni.catalog without importing this module
    "name": "road", "order": 50,
    "scores": [["road_morf", "lower"], ["road_lerf", "higher"], ["road_combined", "higher"],
               ["road_consistency", "higher"]],
    "citation": 'Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent and Efficient '
                'Evaluation Strategy for Attribution Methods", ICML',
}]

PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # % of pixels removed (Rong et al.)
NOISE = 0.01  # standard deviation of the imputation noise (Rong et al.'s default)
# (row offset, column offset) -> weight of a neighbour in the imputation (Rong et al.)
NEIGHBOUR_WEIGHTS = (
    ((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12),
    ((0, -1), 1 / 6), ((0, 1), 1 / 6),
    ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12),
)
ORDERS = ("morf", "lerf")


def metric_names() -> list[str]:
    """The keys :func:`road` returns, in order."""
    return ["road_morf", "road_lerf", "road_combined", "road_consistency"]


def validate_options(percentages: Sequence[float] = PERCENTAGES, noise: float = NOISE
                     ) -> tuple[tuple[float, ...], float]:
    """The options as :func:`road` uses them, or a one-line :class:`ConfigError`."""
    try:
        values = tuple(float(p) for p in percentages)
    except (TypeError, ValueError):
        raise ConfigError(f"percentages={percentages!r} must be a list of numbers in (0, 100)"
                          ) from None
    if not values or any(not 0 < p < 100 for p in values):
        raise ConfigError(f"percentages={list(percentages)!r} must be numbers in (0, 100)")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ConfigError(f"noise={noise!r} must be a number >= 0")
    return values, float(noise)


def impute(image: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """Linear imputation of one image ``(C, H, W)``: the pixels where ``removed``
    ``(H, W)`` is true become the weighted mean of their neighbours
    (:data:`NEIGHBOUR_WEIGHTS`), all solved at once; the others are kept."""
    channels, height, width = image.shape
    flat_removed = removed.detach().cpu().numpy().reshape(-1)
    values = image.detach().cpu().double().numpy().reshape(channels, -1)
    unknown = np.flatnonzero(flat_removed)
    if unknown.size == 0:
        return image.clone()
    if unknown.size == flat_removed.size:
        raise ConfigError("ROAD cannot impute an image with every pixel removed")
    variable = np.full(flat_removed.size, -1)
    variable[unknown] = np.arange(unknown.size)
    row, col = np.divmod(unknown, width)
    # equation of unknown u: (sum of its in-image neighbour weights) x_u
    #   - sum over removed neighbours v of w x_v = sum over kept neighbours v of w value_v
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    rows, cols, entries = [], [], []
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS:
        r, c = row + dr, col + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        diagonal[inside] += weight
        neighbour = np.where(inside, r * width + c, 0)
        missing = inside & flat_removed[neighbour]
        kept = inside & ~missing
        rhs[kept] += weight * values[:, neighbour[kept]].T
        rows.append(np.flatnonzero(missing))
        cols.append(variable[neighbour[missing]])
        entries.append(np.full(int(missing.sum()), -weight))
    index = np.arange(unknown.size)
    system = scipy.sparse.csc_matrix(
        (np.concatenate([diagonal, *entries]),
         (np.concatenate([index, *rows]), np.concatenate([index, *cols]))),
        shape=(unknown.size, unknown.size))
    # the system is symmetric positive definite (w_uv = w_vu, diagonally dominant, every
    # hole touches a kept pixel): a symmetric ordering without pivoting factorises it in
    # half the time of spsolve's COLAMD with partial pivoting, to the same solution
    factor = scipy.sparse.linalg.splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                      options={"SymmetricMode": True})
    solution = factor.solve(rhs).reshape(unknown.size, channels)
    filled = values.copy()
    filled[:, unknown] = solution.T
    return torch.from_numpy(filled.reshape(channels, height, width)).to(image)


def imputation_threads(device: torch.device) -> int:
    """Threads for the imputation: torch's intra-op threads when the model runs on the CPU
    (the cores a run was given, ``OMP_NUM_THREADS``; the model waits while they impute),
    every core the process may use when it runs on a GPU (whose host cores idle)."""
    if device.type == "cpu":
        return torch.get_num_threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def noise_of(seed: int, image_id: str, order: str, percentage: float,
             shape: Sequence[int]) -> torch.Tensor:
    """Standard normal draws ``shape`` for one image, order and percentage (scaled by
    ``noise`` and used at the removed pixels only)."""
    generator = rng.torch_generator(seed, image_id, f"road/{order}/{percentage:g}")
    return torch.randn(tuple(shape), generator=generator)


def removed_count(num_pixels: int, percentage: float) -> int:
    """How many of ``num_pixels`` pixels are removed at ``percentage``: all but the
    ``ceil((100 - p)(HW - 1) / 100)`` that a threshold at the ``(100 - p)``-th percentile
    (linear interpolation, as numpy's and grad-cam's) keeps of distinct values; exact
    rational arithmetic, so no rounding moves a pixel across."""
    kept = math.ceil((100 - Fraction(percentage)) * (num_pixels - 1) / 100)
    return num_pixels - kept


def removed_mask(ranks: torch.Tensor, order: str, percentage: float) -> torch.Tensor:
    """``(H*W,)`` bool: the pixels ``order`` removes at ``percentage``, from the pixels'
    positions in the descending attribution order (:func:`pixel_ranks`)."""
    count = removed_count(ranks.numel(), percentage)
    if order == "morf":
        return ranks < count
    return ranks >= ranks.numel() - count


def road_curves(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    percentages: Sequence[float] = PERCENTAGES,
    noise: float = NOISE,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    cache: ScoreCache | None = None,
) -> dict[str, torch.Tensor]:
    """``{"morf": (N, P), "lerf": (N, P)}``: ``F_c`` of the imputed images at each of the
    ``P`` percentages. Each imputed image is built when its batch of ``batch_size`` rows
    reaches the model; with ``cache`` (:mod:`uni.metrics.score_cache`) a row is keyed by
    the image, the attributions, the target, the order, percentage, noise and its draw."""
    percentages, noise = validate_options(percentages, noise)
    n, channels, height, width = x.shape
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    ranks = pixel_ranks(attributions).cpu()
    plan = [(i, order, p) for i in range(n) for order in ORDERS for p in percentages]

    def imputed(i: int, order: str, p: float) -> torch.Tensor:
        removed = removed_mask(ranks[i], order, p)
        filled = impute(x[i], removed.view(height, width))
        if noise > 0:
            draw = noise_of(seed, image_ids[i], order, p, (channels, height * width))
            flat = filled.view(channels, -1)
            flat[:, removed.to(flat.device)] += noise * draw[:, removed].to(flat)
        return filled

    threads = min(imputation_threads(x.device), batch_size)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def perturbed(rows) -> torch.Tensor:
        chosen = plan[rows] if isinstance(rows, slice) else [plan[int(r)] for r in rows]
        if pool is None:
            return torch.stack([imputed(*row) for row in chosen])
        return torch.stack(list(pool.map(lambda row: imputed(*row), chosen)))

    def keys() -> list:
        images, orders = cache.fingerprints(x), cache.fingerprints(attributions)
        return [("road", images[i], orders[i], int(target[i]), order, p, noise, seed,
                 image_ids[i]) for i, order, p in plan]

    try:
        scores = perturbed_scores(
            model, perturbed, target.repeat_interleave(len(ORDERS) * len(percentages)), output,
            batch_size, cache, keys,
        ).view(n, len(ORDERS), len(percentages))
    finally:
        if pool is not None:
            pool.shutdown()
    return {order: scores[:, k] for k, order in enumerate(ORDERS)}


def road(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    percentages: Sequence[float] = PERCENTAGES,
    noise: float = NOISE,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    cache: ScoreCache | None = None,
) -> dict[str, torch.Tensor]:
    """Per image: ``road_morf``, ``road_lerf``, ``road_combined`` and
    ``road_consistency`` (module docstring)."""
    curves = road_curves(model, x, attributions, target, percentages=percentages,
                         noise=noise, output=output, batch_size=batch_size,
                         image_ids=image_ids, seed=seed, cache=cache)
    morf, lerf = curves["morf"].double(), curves["lerf"].double()
    values = (morf.mean(1), lerf.mean(1), (lerf.mean(1) - morf.mean(1)) / 2,
              (lerf > morf).double().mean(1))
    return dict(zip(metric_names(), (v.float() for v in values)))


__all__ = ["NEIGHBOUR_WEIGHTS", "NOISE", "PERCENTAGES", "impute", "metric_names", "road",
           "road_curves"]


register_metric("road", road, catalog=CATALOG, record_names=metric_names,
                validate=validate_options, output_per_entry=True)

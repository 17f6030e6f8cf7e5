"""MuFidelity (Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI, def. 3; the ``MuFidelity`` of Xplique).

Split the image into a ``grid x grid`` lattice, draw ``subsets`` random sets ``S`` of cells,
set the pixels of ``S`` to ``fill`` (:mod:`uni.metrics.fills`) and correlate, over subsets,
``sum_{i in S} A_i`` (channel-summed) with ``F_c(x) - F_c(x_[S=fill])``. Higher is better.

The protocol choices are options:

- ``masks``: ``exact`` draws exactly ``floor(fraction * grid^2)`` cells per subset;
  ``bernoulli`` removes each cell independently with probability ``fraction`` (Xplique);
- ``correlation``: ``pearson`` or ``spearman`` (Xplique; average ranks for ties);
- ``nan_to_zero``: a NaN correlation (a constant side, e.g. a model whose score does not
  move) counts as 0, as in Xplique; otherwise it stays NaN and the record says why.

Subsets come from a generator keyed on ``(seed, image_id)``: the same for an image alone
or in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni import rng
from uni.errors import ConfigError
from uni.metrics._common import (
    batched_scores,
    pearson,
    pixel_map,
    positive_int,
    spearman,
)
from uni.metrics.fills import BLUR_SIGMA, fill_image, validate_fill
from uni.metrics.score_cache import ScoreCache, perturbed_scores

GRID = 9
SUBSETS = 128
FRACTION = 0.2
MASKS = "exact"
FILL = "black"
CORRELATION = "pearson"
NAN_TO_ZERO = False

CORRELATIONS = {"pearson": pearson, "spearman": spearman}


def exact_cells(uniform: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean like ``uniform`` ``(subsets, cells)``: the ``floor(fraction * cells)`` cells
    with the smallest draws in each row."""
    size = int(fraction * uniform.shape[-1])
    chosen = uniform.argsort(-1)[:, :size]
    return torch.zeros(uniform.shape, dtype=torch.bool).scatter_(1, chosen, True)


def bernoulli_cells(uniform: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean like ``uniform``: every cell independently with probability ``fraction``."""
    return uniform < fraction


MASK_KINDS = {"exact": exact_cells, "bernoulli": bernoulli_cells}


def validate_options(
    grid: int = GRID,
    subsets: int = SUBSETS,
    fraction: float = FRACTION,
    masks: str = MASKS,
    fill=FILL,
    blur_sigma: float = BLUR_SIGMA,
    correlation: str = CORRELATION,
    nan_to_zero: bool = NAN_TO_ZERO,
) -> tuple[int, int]:
    """Raise :class:`ConfigError` for option values that cannot work; returns
    ``(grid, subsets)`` as ints."""
    grid = positive_int("grid", grid)
    if positive_int("subsets", subsets) < 2:
        raise ConfigError(f"subsets={subsets} must be >= 2 (a correlation needs two points)")
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"fraction={fraction} must be in (0, 1]")
    if masks not in MASK_KINDS:
        raise ConfigError(f"masks={masks!r} is not one of {list(MASK_KINDS)}")
    if correlation not in CORRELATIONS:
        raise ConfigError(f"correlation={correlation!r} is not one of {list(CORRELATIONS)}")
    if not isinstance(nan_to_zero, bool):
        raise ConfigError(f"nan_to_zero={nan_to_zero!r} must be true or false")
    validate_fill(fill, blur_sigma)
    return grid, int(subsets)


def cell_index(height: int, width: int, grid: int, device=None) -> torch.Tensor:
    """The grid cell (0 .. grid^2 - 1) of every pixel; cells differ by at most one pixel."""
    rows = torch.arange(height, device=device) * grid // height
    cols = torch.arange(width, device=device) * grid // width
    return rows[:, None] * grid + cols[None, :]


def draw_subsets(
    image_ids: Sequence[str],
    seed: int,
    grid: int,
    subsets: int,
    fraction: float,
    masks: str = MASKS,
) -> torch.Tensor:
    """Boolean ``(N, subsets, grid^2)``: which cells each subset removes, per image. Both
    kinds of ``masks`` threshold the same keyed uniform draws."""
    choose = MASK_KINDS[masks]

    def one_image(generator):
        return choose(torch.rand(subsets, grid * grid, generator=generator), fraction)

    return rng.per_image(one_image, image_ids, seed, "mufidelity")


def mufidelity(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    grid: int = GRID,
    subsets: int = SUBSETS,
    fraction: float = FRACTION,
    masks: str = MASKS,
    fill=FILL,
    blur_sigma: float = BLUR_SIGMA,
    correlation: str = CORRELATION,
    nan_to_zero: bool = NAN_TO_ZERO,
    output: str = "prob",
    batch_size: int = 4,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
    cache: ScoreCache | None = None,
) -> torch.Tensor:
    """One MuFidelity value per image (NaN where either side has zero variance, unless
    ``nan_to_zero``). ``cache``: a :class:`~uni.metrics.score_cache.ScoreCache` that
    shares the perturbed images' scores with other calls on the same images."""
    grid, subsets = validate_options(grid, subsets, fraction, masks, fill, blur_sigma,
                                     correlation, nan_to_zero)
    n, _, height, width = x.shape
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    chosen = draw_subsets(image_ids, seed, grid, subsets, fraction, masks).to(x.device)
    cells = cell_index(height, width, grid, x.device).flatten()  # (H*W,)
    cell_sums = torch.zeros(n, grid * grid, device=x.device).index_add_(
        1, cells, pixel_map(attributions).flatten(1)
    )
    attribution_removed = (chosen.float() * cell_sums[:, None, :]).sum(-1)  # (N, S)

    image_of_row = torch.arange(n, device=x.device).repeat_interleave(subsets)
    removed_of_row = chosen.flatten(0, 1)  # (N * S, G)
    filled = fill_image(model, x, fill, blur_sigma)

    def masked(rows: slice) -> torch.Tensor:
        removed = removed_of_row[rows][:, cells].view(-1, 1, height, width)
        image = image_of_row[rows]
        return torch.where(removed, filled[image], x[image])

    def keys() -> list:
        # a perturbed image: the image, the fill image, the target and the removed cells
        images, fills = cache.fingerprints(x), cache.fingerprints(filled, remember=False)
        cells_of = chosen.cpu().numpy()
        return [("cells", images[i], fills[i], int(target[i]), grid, cells_of[i, j].tobytes())
                for i in range(n) for j in range(subsets)]

    scores = perturbed_scores(
        model, masked, target.repeat_interleave(subsets), output, batch_size, cache, keys
    ).view(n, subsets)
    if score_input is None:
        score_input = batched_scores(model, x, target, output, batch_size)
    values = CORRELATIONS[correlation](attribution_removed, score_input.view(-1, 1) - scores)
    return values.nan_to_num(nan=0.0) if nan_to_zero else values

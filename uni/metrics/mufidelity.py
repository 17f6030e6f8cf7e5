"""MuFidelity (Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI; the ``MuFidelity`` of Xplique).

Split the image into a ``grid x grid`` lattice, draw ``subsets`` random sets ``S`` of
``floor(fraction * grid^2)`` cells, set the pixels of ``S`` to ``baseline_value`` and take
the Pearson correlation over subsets between ``sum_{i in S} A_i`` (channel-summed) and
``F_c(x) - F_c(x_[S=baseline])``. Higher is better. Subsets come from a generator keyed
on ``(seed, image_id)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni import rng
from uni.errors import ConfigError
from uni.metrics._common import batched_scores, pearson, pixel_map, scores_of_rows

GRID = 9
SUBSETS = 128
FRACTION = 0.2
BASELINE_VALUE = 0.0


def cell_index(height: int, width: int, grid: int, device=None) -> torch.Tensor:
    """The grid cell (0 .. grid^2 - 1) of every pixel; cells differ by at most one pixel."""
    rows = torch.arange(height, device=device) * grid // height
    cols = torch.arange(width, device=device) * grid // width
    return rows[:, None] * grid + cols[None, :]


def draw_subsets(
    image_ids: Sequence[str], seed: int, grid: int, subsets: int, fraction: float
) -> torch.Tensor:
    """Boolean ``(N, subsets, grid^2)``: which cells each subset removes, per image."""
    cells = grid * grid
    size = int(fraction * cells)

    def one_image(generator):
        order = torch.rand(subsets, cells, generator=generator).argsort(-1)[:, :size]
        return torch.zeros(subsets, cells, dtype=torch.bool).scatter_(1, order, True)

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
    baseline_value: float = BASELINE_VALUE,
    output: str = "prob",
    batch_size: int = 64,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
    score_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """One MuFidelity value per image (NaN where either side has zero variance)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction={fraction} must be in (0, 1]")
    if grid < 1 or subsets < 2:
        raise ConfigError(f"grid={grid} must be >= 1 and subsets={subsets} >= 2")
    n, _, height, width = x.shape
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    chosen = draw_subsets(image_ids, seed, grid, subsets, fraction).to(x.device)  # (N, S, G)
    cells = cell_index(height, width, grid, x.device).flatten()  # (H*W,)
    cell_sums = torch.zeros(n, grid * grid, device=x.device).index_add_(
        1, cells, pixel_map(attributions).flatten(1)
    )
    attribution_removed = (chosen.float() * cell_sums[:, None, :]).sum(-1)  # (N, S)

    image_of_row = torch.arange(n, device=x.device).repeat_interleave(subsets)
    removed_of_row = chosen.flatten(0, 1)  # (N * S, G)
    fill = torch.tensor(baseline_value, dtype=x.dtype, device=x.device)

    def masked(rows: slice) -> torch.Tensor:
        removed = removed_of_row[rows][:, cells].view(-1, 1, height, width)
        return torch.where(removed, fill, x[image_of_row[rows]])

    scores = scores_of_rows(
        model, masked, target.repeat_interleave(subsets), output, batch_size
    ).view(n, subsets)
    if score_input is None:
        score_input = batched_scores(model, x, target, output, batch_size)
    return pearson(attribution_removed, score_input.view(-1, 1) - scores)

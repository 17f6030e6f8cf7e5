"""Small helpers the metrics share: batched scoring and channel-summed maps."""

from __future__ import annotations

from collections.abc import Callable

import torch

from uni.models import class_score


@torch.no_grad()
def scores_of_rows(
    model: torch.nn.Module,
    rows_of: Callable[[slice], torch.Tensor],
    target: torch.Tensor,
    output: str,
    batch_size: int,
) -> torch.Tensor:
    """``F_c`` of ``len(target)`` images that ``rows_of(slice)`` builds ``batch_size`` at a
    time, so perturbed copies never all sit in memory at once."""
    out = []
    for start in range(0, target.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        out.append(class_score(model(rows_of(rows)), target[rows], output))
    return torch.cat(out).float()


def batched_scores(
    model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, output: str, batch_size: int
) -> torch.Tensor:
    """``F_c`` of a stack of images, ``batch_size`` at a time."""
    return scores_of_rows(model, images.__getitem__, target, output, batch_size)


def pixel_map(attributions: torch.Tensor) -> torch.Tensor:
    """Attribution per pixel: summed over channels, shape ``(N, H, W)``."""
    return attributions.sum(1).float()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of ``(N, K)`` tensors; NaN where a row is constant."""
    a = a.double() - a.double().mean(-1, keepdim=True)
    b = b.double() - b.double().mean(-1, keepdim=True)
    return ((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).float()

"""Small helpers the metrics share: batched scoring, channel-summed maps, rank statistics,
top-k sets and option checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from uni.errors import ConfigError
from uni.models import class_score


@torch.no_grad()
def scores_by_output(
    model: torch.nn.Module,
    rows_of: Callable[[slice], torch.Tensor],
    target: torch.Tensor,
    outputs: Sequence[str],
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """``F_c`` under each of ``outputs`` (``prob``, ``logit``) of ``len(target)`` images
    that ``rows_of(slice)`` builds ``batch_size`` at a time (so perturbed copies never all
    sit in memory at once), every output from the same forward pass."""
    out = {output: [] for output in outputs}
    for start in range(0, target.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        logits = model(rows_of(rows))
        for output in outputs:
            out[output].append(class_score(logits, target[rows], output))
    return {output: torch.cat(values).float() for output, values in out.items()}


def scores_of_rows(
    model: torch.nn.Module,
    rows_of: Callable[[slice], torch.Tensor],
    target: torch.Tensor,
    output: str,
    batch_size: int,
) -> torch.Tensor:
    """``F_c`` of ``len(target)`` images that ``rows_of(slice)`` builds ``batch_size`` at a
    time, so perturbed copies never all sit in memory at once."""
    return scores_by_output(model, rows_of, target, (output,), batch_size)[output]


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


def ranks(a: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks of an ``(N, K)`` tensor, ties given their average rank (as in
    ``scipy.stats.rankdata``), in float64."""
    a = a.detach().double()
    order = a.argsort(dim=-1, stable=True)
    ordered = a.gather(-1, order)
    n, k = a.shape
    # tie groups: a new group starts wherever the sorted value changes
    starts = torch.ones(n, k, dtype=torch.bool, device=a.device)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(-1) - 1  # group index of each sorted position
    position = torch.arange(k, dtype=torch.float64, device=a.device).expand(n, k)
    total = torch.zeros(n, k, dtype=torch.float64, device=a.device).scatter_add_(1, group, position)
    count = torch.zeros(n, k, dtype=torch.float64, device=a.device).scatter_add_(
        1, group, torch.ones_like(position)
    )
    average = (total / count.clamp_min(1)).gather(-1, group)  # 0-based average rank
    return torch.empty_like(average).scatter_(1, order, average)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Spearman rank correlation of ``(N, K)`` tensors (Pearson of average
    ranks); NaN where a row is constant."""
    return pearson(ranks(a), ranks(b))


def descending_order(values: torch.Tensor) -> torch.Tensor:
    """Row-wise indices from largest to smallest, ties in index order (a stable sort)."""
    return torch.sort(values.detach(), dim=-1, descending=True, stable=True).indices


def top_k_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``(N, K)``: the ``k`` largest entries of each row (ties by index order)."""
    k = min(int(k), values.shape[-1])
    chosen = descending_order(values)[:, :k]
    return torch.zeros_like(values, dtype=torch.bool).scatter_(1, chosen, True)


def top_k_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """Fraction of the ``k`` largest entries of each row of ``a`` that are also among the
    ``k`` largest of ``b`` (Ghorbani et al. 2019); ``k`` is clipped to the row length."""
    k = min(int(k), a.shape[-1])
    return (top_k_mask(a, k) & top_k_mask(b, k)).sum(-1).float() / k


def positive_int(name: str, value) -> int:
    """``value`` as an int >= 1, or a :class:`ConfigError` naming the option."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value != value or value in (float("inf"), float("-inf")) \
            or value != int(value) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)

"""Static baselines for Integrated Gradients (docs/design.md §2).

Each baseline function maps a batch ``x`` in [0, 1] (and the images' ids and the run
seed, for the noise baselines) to a tensor shaped like ``x``. Noise is drawn per image
from a generator keyed on ``(seed, image_id)``, so a baseline does not depend on the
batch an image is in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from uni import rng
from uni.contract import bounded, one_of
from uni.methods._registry import register_options

BLUR_SIGMA = 10.0  # px at 224x224 (docs/design.md §2)
GAUSSIAN_SIGMA = 0.2


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius 3 sigma)."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(math.ceil(3 * sigma)))
    # reflect padding needs radius < size: clamp for tiny images
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(out, vertical, groups=channels)


def black(x: torch.Tensor, **_) -> torch.Tensor:
    return torch.zeros_like(x)


def white(x: torch.Tensor, **_) -> torch.Tensor:
    return torch.ones_like(x)


def blur(x: torch.Tensor, sigma: float = BLUR_SIGMA, **_) -> torch.Tensor:
    """Gaussian blur of ``x``; ``sigma`` is in pixels at 224 px and scales with the size."""
    return gaussian_blur(x, sigma * x.shape[-1] / 224)


def uniform(
    x: torch.Tensor, image_ids: Sequence[str], seed: int = 0, draw: int = 0, **_
) -> torch.Tensor:
    """``U(0, 1)`` per pixel."""
    return rng.per_image(
        lambda g: torch.rand(x.shape[1:], generator=g), image_ids, seed, f"uniform/{draw}", x.device
    ).to(x.dtype)


def gaussian(
    x: torch.Tensor,
    image_ids: Sequence[str],
    seed: int = 0,
    sigma: float = GAUSSIAN_SIGMA,
    draw: int = 0,
    **_,
) -> torch.Tensor:
    """``clip(x + N(0, sigma^2), 0, 1)``."""
    noise = rng.per_image(
        lambda g: torch.randn(x.shape[1:], generator=g), image_ids, seed, f"gaussian/{draw}",
        x.device,
    )
    return (x + sigma * noise.to(x.dtype)).clamp(0, 1)


BASELINES = {"black": black, "white": white, "blur": blur, "uniform": uniform, "gaussian": gaussian}
RANDOM_BASELINES = {"uniform", "gaussian"}
register_options(baseline=one_of(BASELINES), sigma=bounded(0), samples=bounded(1))

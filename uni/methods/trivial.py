"""Trivial maps: attributions that read nothing of the model, scored as floors.

When a map that never looks at the model (a constant, noise, the image's edges or
intensity, a centred blob) scores as well as an attribution method under a metric, that
metric is measuring the image or its own perturbation, not the explanation (the point of
Adebayo et al. 2018's edge-detector comparison, "Sanity Checks for Saliency Maps",
NeurIPS). Each pattern is an ``(N, H, W)`` map, spread evenly over the channels so that
the channel-summed map the metrics read is the pattern itself:

- ``constant``: ones (every pixel tied; orders fall back to raster order);
- ``noise``: ``U(0, 1)`` per pixel, keyed on ``(seed, image_id)`` (:mod:`uni.rng`);
- ``edges``: Sobel gradient magnitude of the grey image (channel mean), replicated border;
- ``intensity``: the grey image;
- ``centre``: a Gaussian centred on the image, standard deviation :data:`CENTRE_SIGMA` of
  the shorter side.

They are not path methods: no baseline, no path, no model pass (``n/a`` in robustness's
straight-line attack and in Riemann stability).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from uni import rng
from uni.methods.path import Attribution

CENTRE_SIGMA = 0.25  # of the shorter image side
_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _grey(x: torch.Tensor) -> torch.Tensor:
    return x.mean(1)


def _edges(x: torch.Tensor) -> torch.Tensor:
    grey = F.pad(_grey(x)[:, None].float(), (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([_SOBEL, _SOBEL.t()])[:, None].to(grey)
    gradient = F.conv2d(grey, kernels)
    return gradient.square().sum(1).sqrt()


def _centre(x: torch.Tensor) -> torch.Tensor:
    n, _, height, width = x.shape
    sigma = CENTRE_SIGMA * min(height, width)
    rows = torch.arange(height, dtype=torch.float32, device=x.device) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32, device=x.device) - (width - 1) / 2
    blob = torch.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma**2))
    return blob.expand(n, height, width)


def _noise(x: torch.Tensor, image_ids: Sequence[str], seed: int) -> torch.Tensor:
    return rng.per_image(lambda g: torch.rand(x.shape[-2:], generator=g), image_ids, seed,
                         "trivial_noise", x.device)


PATTERNS = {
    "constant": lambda x, image_ids, seed: torch.ones_like(x[:, 0]),
    "noise": _noise,
    "edges": lambda x, image_ids, seed: _edges(x),
    "intensity": lambda x, image_ids, seed: _grey(x),
    "centre": lambda x, image_ids, seed: _centre(x),
}
RANDOM_PATTERNS = frozenset({"noise"})


def trivial(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    pattern: str,
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids: Sequence[str] = (),
    seed: int = 0,
) -> Attribution:
    """The trivial map ``pattern`` (:data:`PATTERNS`) of each image, shaped like ``x``.
    ``model``, ``target``, ``output`` and ``internal_batch_size`` are accepted for the
    common method signature; no trivial map reads them."""
    maps = PATTERNS[pattern](x, list(image_ids), seed).to(x.dtype)
    return Attribution((maps / x.shape[1]).unsqueeze(1).expand_as(x).contiguous())

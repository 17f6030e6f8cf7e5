"""Blur IG (Xu, Venugopalan, Sundararajan, Sundararajan & Nayak 2020, "Attribution in Scale
and Space", CVPR): integrated gradients along the path through Gaussian scale space from
a maximally blurred image to ``x``.

The path is ``gamma(sigma) = G_sigma * x`` for ``sigma`` from ``max_sigma`` down to 0,
and ``A = -sum_k (sigma_{k+1} - sigma_k) (d gamma / d sigma)(sigma_k) * dF_c/dx (gamma(sigma_k))``
with ``sigma_k = k max_sigma / steps`` (``k = 0 .. steps-1``; ``sqrt``:
``sqrt(k max_sigma / steps)``) and ``d gamma / d sigma`` a forward difference of step
``grad_step`` in ``sigma``: the discretisation of the reference implementation (PAIR
``saliency``, ``BlurIG.GetMask``). The blur pads with zeros and truncates the kernel at
4 sigma, as ``scipy.ndimage.gaussian_filter(mode="constant")`` does; each separable pass
runs in float64 and is stored in the image's dtype.

All images x steps go through the generic path core (:func:`uni.methods.path.path_gradients`)
in chunks of ``internal_batch_size`` rows; the blur of a chunk is one batched matrix
product per axis (a banded Gaussian matrix per row).

``max_sigma`` and ``grad_step`` are in pixels at 224 px and scale with the image size (as
``ig_blur``'s sigma does), so at 224 px they are PAIR's values.
"""

from __future__ import annotations

import torch

from uni.errors import ConfigError
from uni.methods.idgi import IDGIAccumulator
from uni.methods.path import Attribution, path_diagnostics, path_gradients
from uni.models import class_score

MAX_SIGMA = 50.0  # PAIR saliency 0.2.x defaults (BlurIG.GetMask), except steps (100 there)
GRAD_STEP = 0.01
TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default


def gaussian_matrices(sigma: torch.Tensor, size: int, truncate: float = TRUNCATE) -> torch.Tensor:
    """``(R, size, size)`` float64 matrices ``M_r`` with ``(M_r v)_i = sum_j g_r(j - i) v_j``:
    a Gaussian of standard deviation ``sigma_r`` pixels, truncated at radius
    ``int(truncate sigma_r + 0.5)``, normalised over that radius, zero outside the image.
    ``sigma_r = 0`` gives the identity."""
    sigma = sigma.detach().to(torch.float64).reshape(-1, 1, 1)
    index = torch.arange(size, dtype=torch.float64, device=sigma.device)
    offset = index.view(1, 1, -1) - index.view(1, -1, 1)  # j - i
    radius = torch.floor(truncate * sigma + 0.5)
    safe = sigma.clamp_min(1e-300)
    # normaliser over the full truncated kernel, also the part that falls off the image
    span = torch.arange(-int(radius.max().item()), int(radius.max().item()) + 1,
                        dtype=torch.float64, device=sigma.device).view(1, 1, -1)
    norm = (torch.exp(-0.5 * (span / safe) ** 2) * (span.abs() <= radius)).sum(-1, keepdim=True)
    kernel = torch.exp(-0.5 * (offset / safe) ** 2) * (offset.abs() <= radius) / norm
    identity = (offset == 0).to(torch.float64)
    return torch.where(sigma > 0, kernel, identity)


def scale_space(x: torch.Tensor, sigma: torch.Tensor, truncate: float = TRUNCATE) -> torch.Tensor:
    """Gaussian blur of each row of ``x`` ``(R, C, H, W)`` with its own ``sigma`` ``(R,)``
    in pixels: zero padding, kernel truncated at ``truncate`` sigma, the vertical then
    the horizontal pass, each in float64 and stored in ``x.dtype``."""
    rows = x.shape[0]
    vertical = gaussian_matrices(sigma, x.shape[-2], truncate).to(x.device)
    out = (vertical.view(rows, 1, *vertical.shape[1:]) @ x.to(torch.float64)).to(x.dtype)
    horizontal = gaussian_matrices(sigma, x.shape[-1], truncate).to(x.device)
    out = out.to(torch.float64) @ horizontal.view(rows, 1, *horizontal.shape[1:]).transpose(-1, -2)
    return out.to(x.dtype)


def blur_sigmas(steps: int, max_sigma: float, sqrt: bool) -> torch.Tensor:
    """``sigma_0 .. sigma_steps`` (float64): evenly spaced from 0 to ``max_sigma``, or
    ``sqrt(k max_sigma / steps)`` (which ends at ``sqrt(max_sigma)``, as in PAIR)."""
    fractions = torch.arange(steps + 1, dtype=torch.float64) * max_sigma / steps
    return fractions.sqrt() if sqrt else fractions


def blur_ig(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    max_sigma: float = MAX_SIGMA,
    steps: int = 32,
    grad_step: float = GRAD_STEP,
    sqrt: bool = False,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
    idgi: bool = False,
) -> Attribution:
    """Blur IG attributions for a batch (``idgi``: IDGI's projection of the same
    gradients, :mod:`uni.methods.idgi`). The baseline returned is the path's start, the
    blur at ``max_sigma`` (at ``sqrt(max_sigma)`` with ``sqrt``); ``path_scores`` run
    from it to ``x``. ``rule`` must be ``right``: the published discretisation evaluates
    the gradient at every point but the most blurred one (path positions 1/B .. 1).
    ``image_ids`` and ``seed`` are accepted for the common signature (nothing is random).
    """
    if steps < 1:
        raise ConfigError(f"blur_ig: steps={steps} must be a positive integer")
    if rule != "right":
        raise ConfigError(f"blur_ig: rule={rule!r}; Blur IG's scale-space sum has one "
                          "discretisation (Xu et al., PAIR), the right rule in path position")
    if max_sigma <= 0 or grad_step <= 0:
        raise ConfigError(f"blur_ig: max_sigma={max_sigma} and grad_step={grad_step} must "
                          "be positive")
    scale = x.shape[-1] / 224
    sigmas = blur_sigmas(steps, float(max_sigma), bool(sqrt)).to(x.device)
    weights = -(sigmas[1:] - sigmas[:-1])  # from max_sigma towards x: sigma decreases
    sigmas = sigmas[:-1]
    last: dict = {}

    def points_of(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        points = scale_space(x[i], sigmas[k] * scale)
        last.update(i=i, k=k, points=points)
        return points

    def velocity_of(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        here = last["points"] if last.get("i") is i and last.get("k") is k else \
            scale_space(x[i], sigmas[k] * scale)
        further = scale_space(x[i], (sigmas[k] + grad_step) * scale)
        return (further - here) / grad_step

    accumulator = IDGIAccumulator(x.shape[0], steps) if idgi else None
    grad_sum, scores = path_gradients(
        model, points_of, x.shape[0], target, sigmas, weights, output, internal_batch_size,
        velocity_of=velocity_of, on_rows=accumulator.add if idgi else None,
    )
    end = blur_sigmas(steps, float(max_sigma), bool(sqrt))[-1].item()
    baseline = scale_space(x, torch.full((x.shape[0],), end * scale, device=x.device))
    with torch.no_grad():
        score_baseline = class_score(model(baseline), target, output).float()
    score_input = scores[:, 0]  # sigma_0 = 0: the input itself
    # the steps run from x (sigma_0) towards the blur: IDGI's intervals reversed
    attributions = (accumulator.result(score_input, score_baseline, reverse=True) if idgi
                    else grad_sum).to(x.dtype)
    along = scores.flip(1)  # from the most blurred point evaluated to x
    diagnostics = path_diagnostics(attributions, score_baseline, score_input, along)
    path_scores = torch.cat([score_baseline[:, None], along, score_input[:, None]], dim=1)
    return Attribution(attributions, baseline.detach(), diagnostics, path_scores)

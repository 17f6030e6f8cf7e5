"""What the perturbation metrics put where they remove pixels (docs/design.md §3): a named fill or
canvas, or a constant pixel value.

Each canvas favours the attribution method whose baseline matches it, so the choice is a
config value (``fill`` in MuFidelity and deletion, ``canvas`` in insertion):

- ``black``: pixel value 0 (the RISE-style default of this project);
- ``grey``: pixel value 0.5;
- ``model_zero``: 0 in the model's normalised input space, i.e. the pixel value equal to
  the model's per-channel ``mean`` (Xplique's default ``baseline_mode=0.0``, which acts on
  normalised inputs). Read from ``model.mean`` (:class:`uni.models.PixelSpaceModel`); a
  model without one is taken to normalise with mean 0.5 (the EfficientNet-Lite and
  Inception convention), so its ``model_zero`` is ``grey``;
- ``blur``: a Gaussian blur of the image, ``blur_sigma`` px at 224 px scaled with the
  width (:func:`uni.methods.baselines.blur`; RISE's insertion canvas, Petsiuk et al. 2018);
- ``mean``: the image's own per-channel mean colour;
- a number in [0, 1] (the pixel range): that constant pixel value in every channel.
"""

from __future__ import annotations

import math

import torch

from uni.errors import ConfigError
from uni.methods.baselines import blur

FILLS = ("black", "grey", "model_zero", "blur", "mean")
BLUR_SIGMA = 5.0  # px at 224 px (RISE's insertion blur, sigma 5 at 224 px)
MODEL_MEAN_FALLBACK = 0.5  # pixel mean assumed for a model without a ``mean`` buffer


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_fill(fill, blur_sigma, option: str = "fill") -> None:
    """Raise a one-line :class:`ConfigError` naming ``option`` for a fill that is neither
    one of :data:`FILLS` nor a pixel value in [0, 1], and for a ``blur_sigma`` below 0."""
    if _is_number(fill):
        if not (math.isfinite(fill) and 0 <= fill <= 1):
            raise ConfigError(f"{option}={fill!r} must be a finite number in [0, 1] (a pixel "
                              f"value) or one of {list(FILLS)}")
    elif fill not in FILLS:
        raise ConfigError(f"{option}={fill!r} is not one of {list(FILLS)} or a number")
    if not _is_number(blur_sigma) or not blur_sigma >= 0:
        raise ConfigError(f"blur_sigma={blur_sigma!r} must be >= 0 (px at 224 px)")


def model_mean(model: torch.nn.Module, like: torch.Tensor) -> torch.Tensor:
    """The model's per-channel pixel mean, shaped ``(1, C, 1, 1)`` on ``like``'s device and
    dtype (:data:`MODEL_MEAN_FALLBACK` when the model has no ``mean`` tensor)."""
    mean = getattr(model, "mean", None)
    if not isinstance(mean, torch.Tensor):
        mean = torch.tensor(MODEL_MEAN_FALLBACK)
    return mean.to(like).reshape(1, -1, 1, 1).expand(1, like.shape[1], 1, 1)


def fill_image(
    model: torch.nn.Module, x: torch.Tensor, fill, blur_sigma: float = BLUR_SIGMA
) -> torch.Tensor:
    """The image the metrics take removed pixels from: a tensor shaped like ``x``."""
    validate_fill(fill, blur_sigma)
    if _is_number(fill):
        return torch.full_like(x, float(fill))
    if fill == "blur":
        return blur(x, sigma=float(blur_sigma))
    colour = {
        "black": lambda: torch.zeros_like(x[:1, :, :1, :1]),
        "grey": lambda: torch.full_like(x[:1, :, :1, :1], 0.5),
        "model_zero": lambda: model_mean(model, x),
        "mean": lambda: x.mean(dim=(2, 3), keepdim=True),
    }[fill]()
    return colour.expand_as(x).contiguous()

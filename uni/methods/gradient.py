"""Gradient maps: the input gradient of ``F_c`` (Simonyan, Vedaldi & Zisserman 2014,
"Deep Inside Convolutional Networks"), its magnitude, and gradient x input (Shrikumar et
al. 2016). One forward and one backward pass per image.

They are the limits of a short straight path: IG from a baseline ``x' = x - eps v``
tends to ``eps v ⊙ grad F_c(x)`` as ``eps -> 0``, so a map from a tiny adversarial
baseline (UNI's, on the surface of a small ball) is close to the gradient times the
baseline's offset. These say how much of a path method's score a plain gradient has.
"""

from __future__ import annotations

import torch

from uni.methods.path import Attribution, path_gradients

WHICH = ("gradient", "abs_gradient", "gradient_x_input")


def gradient_map(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    which: str = "gradient",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
) -> Attribution:
    """``grad F_c(x)`` (``gradient``), ``|grad F_c(x)|`` (``abs_gradient``) or
    ``x ⊙ grad F_c(x)`` (``gradient_x_input``). Not a path: no baseline; the diagnostic
    ``score_input`` is ``F_c(x)``. ``image_ids`` and ``seed`` are accepted for the common
    signature (nothing is random)."""
    # the path core at the single point x (weight 1): one model call per chunk of an image
    one = torch.ones(1, dtype=torch.float64, device=x.device)
    grad, scores = path_gradients(model, lambda i, k: x[i].detach(), x.shape[0], target, one,
                                  one, output, internal_batch_size)
    grad, score = grad.to(x.dtype), scores[:, 0]
    maps = {"gradient": grad, "abs_gradient": grad.abs(), "gradient_x_input": x * grad}
    # contiguous: the gradient of a channels-last model is channels-last (the store packs)
    return Attribution(maps[which].detach().contiguous(), None, {"score_input": score})

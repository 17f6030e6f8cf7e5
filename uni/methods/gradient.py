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

from uni.methods.path import Attribution
from uni.models import class_score

WHICH = ("gradient", "abs_gradient", "gradient_x_input")


def input_gradient(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                   output: str, internal_batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``dF_c/dx`` and ``F_c(x)`` per image, in chunks of ``internal_batch_size``."""
    grads, scores = [], []
    chunk = max(1, int(internal_batch_size))
    for s in range(0, x.shape[0], chunk):
        with torch.enable_grad():
            points = x[s : s + chunk].detach().requires_grad_(True)
            values = class_score(model(points), target[s : s + chunk], output)
            (grad,) = torch.autograd.grad(values.sum(), points)
        grads.append(grad)
        scores.append(values.detach().float())
    return torch.cat(grads), torch.cat(scores)


def gradient_map(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    which: str = "gradient",
    output: str = "prob",
    internal_batch_size: int = 16,
    image_ids=(),
    seed: int = 0,
) -> Attribution:
    """``grad F_c(x)`` (``gradient``), ``|grad F_c(x)|`` (``abs_gradient``) or
    ``x ⊙ grad F_c(x)`` (``gradient_x_input``). Not a path: no baseline; the diagnostic
    ``score_input`` is ``F_c(x)``. ``image_ids`` and ``seed`` are accepted for the common
    signature (nothing is random)."""
    grad, score = input_gradient(model, x, target, output, internal_batch_size)
    maps = {"gradient": grad, "abs_gradient": grad.abs(), "gradient_x_input": x * grad}
    # contiguous: the gradient of a channels-last model is channels-last (the store packs)
    return Attribution(maps[which].detach().contiguous(), None, {"score_input": score})

"""Adapters between our methods and peers' code: the baselines a method integrates from,
for Captum's ``IntegratedGradients`` (:func:`baselines`, also ``uni.baselines``), and
PAIR ``saliency``'s ``call_model_function`` (:func:`saliency_call_model`, for the
agreement tests and the speed benchmarks against it). Quantus' ``explain_func`` is
:func:`uni.quantus.explain`."""

from __future__ import annotations

import numpy as np
import torch

from uni.errors import ConfigError
from uni.models import class_score


def baselines(
    model: torch.nn.Module,
    x: torch.Tensor,
    target=None,
    method: str = "uni",
    *,
    image_ids=None,
    seed: int = 0,
    **options,
) -> torch.Tensor:
    """The baselines ``method`` integrates from for the batch ``x``, without its path
    integral: UNI's learned baseline, a static one (``ig_black``, ``ig_blur``, ...) or
    Expected Gradients' draws.

    Shaped like ``x`` when the method has one baseline per image, so that Captum's
    ``IntegratedGradients(forward).attribute(x, baselines=..., target=..., n_steps=steps,
    method="riemann_right")`` equals ``uni.attribute(model, x, target, method, steps=steps,
    rule="right", **options)``, with ``forward = lambda x: model(x).softmax(-1)`` for our
    default ``output="prob"`` (``model`` for ``output="logit"``). With several draws per
    image (``samples`` > 1 of a noise baseline, Expected Gradients) it is ``(draws, *x.shape)``
    and the attributions are the mean of Captum's over the draws. ``target``: class indices
    (``None``: the prediction); ``image_ids`` and ``seed`` key the random draws and UNI's
    search as in :func:`uni.attribute` (``None``: a hash of each image's pixels). Path
    options (``steps``, ``rule``, ...) are accepted and change nothing here.
    """
    from uni.methods import Explainer, check_method_options, get_spec, resolve_target

    check_method_options(method, options)
    if not get_spec(method).is_straight_line(options):
        raise ConfigError(f"method={method!r} does not integrate along straight lines from "
                          "baselines with these options: Captum's IntegratedGradients cannot "
                          "reproduce it")
    if x.dim() != 4:
        raise ConfigError(f"x must be a batch (N, C, H, W); got shape {tuple(x.shape)}")
    target = resolve_target(model, x, target)
    stacked, draws = Explainer(model, method, options).baselines(x, target,
                                                                 image_ids=image_ids, seed=seed)
    return stacked if draws == 1 else stacked.view(draws, *x.shape)


def saliency_call_model(model: torch.nn.Module, target: int, output: str = "prob"):
    """PAIR ``saliency``'s ``call_model_function`` for ``model``: NumPy HWC batches in,
    ``dF_c/dx`` (``output``: softmax probability or logit of class ``target``) out."""
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    device = next(model.parameters()).device

    def call(batch, call_model_args=None, expected_keys=None):
        x = torch.from_numpy(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        x = x.to(device).contiguous().requires_grad_(True)
        values = class_score(model(x), torch.full((x.shape[0],), target, device=device), output)
        (grad,) = torch.autograd.grad(values.sum(), x)
        return {INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).cpu().numpy()}

    return call

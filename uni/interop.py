"""Adapters that let peers' code call our models (PAIR ``saliency`` here), for the
agreement tests and the speed benchmarks against them."""

from __future__ import annotations

import numpy as np
import torch

from uni.models import class_score


def saliency_call_model(model: torch.nn.Module, target: int, output: str = "prob"):
    """PAIR ``saliency``'s ``call_model_function`` for ``model``: NumPy HWC batches in,
    ``dF_c/dx`` (``output``: softmax probability or logit of class ``target``) out."""
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    def call(batch, call_model_args=None, expected_keys=None):
        x = torch.from_numpy(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        x = x.contiguous().requires_grad_(True)
        values = class_score(model(x), torch.full((x.shape[0],), target), output)
        (grad,) = torch.autograd.grad(values.sum(), x)
        return {INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}

    return call

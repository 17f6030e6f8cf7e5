"""DeepLIFT (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
Propagating Activation Differences"), rescale rule, via Captum's ``DeepLift``.

Captum applies the rescale rule only to the activation classes it knows (ReLU, ELU,
Sigmoid, ...); every other elementwise activation timm models use (ReLU6, SiLU, GELU,
Hardswish, timm's own classes, ...) would silently fall back to its plain gradient. Here
they all go through Captum's nonlinear rescale rule, in-place activations are made
out-of-place for the call, and the per-image convergence delta (completeness gap) is
reported: for ViTs (attention's softmax and products are functional, not modules)
DeepLIFT is only approximate.
"""

from __future__ import annotations

import contextlib

import timm.layers.activations as timm_activations
import torch
from captum.attr import DeepLift
from captum.attr._core import deep_lift as captum_deep_lift
from torch import nn

from uni.methods.baselines import BASELINES
from uni.methods.path import Attribution
from uni.models import class_score

ELEMENTWISE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.GELU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    timm_activations.GELU, timm_activations.GELUTanh, timm_activations.QuickGELU,
    timm_activations.Swish, timm_activations.Mish, timm_activations.HardMish,
    timm_activations.HardSwish, timm_activations.HardSigmoid, timm_activations.Sigmoid,
    timm_activations.Tanh, timm_activations.PReLU,
)


@contextlib.contextmanager
def rescale_rule_for_all_activations(model: nn.Module):
    """Register every elementwise activation with Captum's rescale rule and turn off
    ``inplace`` for the duration (Captum needs each module's input and output)."""
    registry = captum_deep_lift.SUPPORTED_NON_LINEAR
    added = [a for a in ELEMENTWISE_ACTIVATIONS if a not in registry]
    inplace = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for activation in added:
        registry[activation] = captum_deep_lift.nonlinear
    for module in inplace:
        module.inplace = False
    try:
        yield
    finally:
        for activation in added:
            registry.pop(activation, None)
        for module in inplace:
            module.inplace = True


class _ExplainedOutput(nn.Module):
    """The model followed by the softmax (``prob``) so that DeepLIFT explains ``F_c``."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        self.model = model
        self.softmax = nn.Softmax(dim=-1) if output == "prob" else None

    def forward(self, x):
        logits = self.model(x)
        return self.softmax(logits) if self.softmax is not None else logits


def deeplift(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    baseline: str = "black",
    output: str = "prob",
    internal_batch_size: int = 16,
    image_ids=(),
    seed: int = 0,
    **baseline_options,
) -> Attribution:
    """DeepLIFT attributions with a static baseline (black by default); diagnostics hold
    the convergence delta ``sum A - (F_c(x) - F_c(x'))`` and its relative size."""
    references = BASELINES[baseline](x, image_ids=image_ids, seed=seed, **baseline_options)
    explained = _ExplainedOutput(model, output).eval()
    chunk = max(1, internal_batch_size // 2)  # Captum runs input and reference together
    attributions, deltas = [], []
    with rescale_rule_for_all_activations(explained), torch.enable_grad():
        explainer = DeepLift(explained)
        for s in range(0, x.shape[0], chunk):
            a, d = explainer.attribute(
                x[s : s + chunk], references[s : s + chunk], target=target[s : s + chunk],
                return_convergence_delta=True,
            )
            attributions.append(a.detach())
            deltas.append(d.detach())
    attributions, delta = torch.cat(attributions), torch.cat(deltas)
    with torch.no_grad():
        ends = class_score(model(torch.cat([references, x])), target.repeat(2), output)
    difference = ends[x.shape[0] :] - ends[: x.shape[0]]
    diagnostics = {
        "score_baseline": ends[: x.shape[0]],
        "score_input": ends[x.shape[0] :],
        "convergence_delta": delta,
        "completeness_gap": delta.abs() / difference.abs(),
    }
    return Attribution(attributions, references, diagnostics)

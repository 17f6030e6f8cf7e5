"""DeepLIFT (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
Propagating Activation Differences"), rescale rule, via Captum's ``DeepLift``.

Captum applies the rescale rule only to the activation classes it knows (ReLU, ELU,
Sigmoid, ...); every other elementwise activation timm models use (ReLU6, SiLU, GELU,
Hardswish, timm's own classes, ...) would silently fall back to its plain gradient. Here
they all go through Captum's nonlinear rescale rule, in-place activations are made
out-of-place for the call, and the per-image convergence delta (completeness gap) is
reported: for ViTs (attention's softmax and products are functional, not modules)
DeepLIFT is only approximate. Two of Captum's rules are replaced for the call: max
pooling (overlapping windows lost their shares, breaking completeness on ResNets) and
the softmax of ``output=prob`` (incomplete and dependent on the other images of the
batch); see :func:`_maxpool_rule` and :func:`softmax_path_rule`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import timm.layers.activations as timm_activations
import torch
import torch.nn.functional as F
from captum.attr import DeepLift
from captum.attr._core import deep_lift as captum_deep_lift
from torch import nn

from uni.errors import ConfigError
from uni.inputs import eval_mode
from uni.methods._registry import register_method
from uni.methods.baselines import BASELINES
from uni.methods.path import Attribution
from uni.models import class_score

CATALOG = [{"name": "deeplift", "order": 20}]  # read by uni.catalog

ELEMENTWISE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.GELU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    timm_activations.GELU, timm_activations.GELUTanh, timm_activations.QuickGELU,
    timm_activations.Swish, timm_activations.Mish, timm_activations.HardMish,
    timm_activations.HardSwish, timm_activations.HardSigmoid, timm_activations.Sigmoid,
    timm_activations.Tanh, timm_activations.PReLU,
)


def _scatter_to_inputs(values: torch.Tensor, indices: torch.Tensor, shape) -> torch.Tensor:
    """The adjoint of max pooling with ``indices``: each pooled value is *added* to the
    input position it came from (``max_unpool`` overwrites, losing overlapping windows)."""
    out = values.new_zeros(shape[0], shape[1], int(torch.Size(shape[2:]).numel()))
    out.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return out.view(shape)


def _maxpool_rule(pool: Callable[..., tuple[torch.Tensor, torch.Tensor]]):
    """Captum's max-pooling rule with the overlapping-window bug fixed.

    Each window's output difference ``max(x_w) - max(r_w)`` is split, as in Captum, into
    ``max(o, o_ref) - o_ref`` at the input's argmax and ``o - max(o, o_ref)`` at the
    reference's argmax. Captum sends these back with ``max_unpool``, which keeps one
    value per input position: with overlapping windows (timm ResNets: kernel 3,
    stride 2) the other windows' shares are lost and completeness breaks (relative
    convergence deltas of 12-51% on a random ResNet-18). Here they are summed. Both
    halves of the Captum batch get the same multipliers (from the inputs' half), and
    where ``Δin`` vanishes each row keeps its own gradient (Captum's falls back to the
    first row's).
    """

    def rule(module, inputs, outputs, grad_input, grad_output, eps=1e-10):
        with torch.no_grad():
            x, x_ref = inputs.chunk(2)
            out, out_ref = outputs.chunk(2)
            g = grad_output.chunk(2)[0]
            top = torch.max(out, out_ref)
            args = (module.kernel_size, module.stride, module.padding, module.dilation,
                    module.ceil_mode, True)
            _, idx = pool(x, *args)
            _, idx_ref = pool(x_ref, *args)
            contributions = _scatter_to_inputs(g * (top - out_ref), idx, x.shape)
            contributions += _scatter_to_inputs(g * (out - top), idx_ref, x.shape)
            delta_in = x - x_ref
            multipliers = torch.where(
                delta_in.abs() < eps, grad_input.chunk(2)[0], contributions / delta_in
            )
            return torch.cat([multipliers, multipliers])

    return rule


class SoftmaxOutput(nn.Softmax):
    """The softmax after the logits when ``F_c`` is a probability (a class of its own so
    that its DeepLIFT rule, :func:`softmax_path_rule`, applies only here)."""


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(128)


def softmax_path_rule(module, inputs, outputs, grad_input, grad_output, eps=1e-10):
    """Multipliers of the final softmax: the average Jacobian along the straight line
    from the reference logits to the input logits (128-point Gauss-Legendre).

    The softmax is not elementwise, so the rescale rule ``Δout/Δin`` does not apply;
    the path average is its generalisation to a multi-input function (for one input it
    *is* ``Δout/Δin``) and satisfies ``sum_i m_i Δz_i = Δp_c`` up to quadrature error
    (~1e-7). Captum's own softmax rule is neither complete nor batch-independent: it
    subtracts the mean multiplier over the whole batch tensor.
    """
    with torch.no_grad():
        z, z_ref = inputs.chunk(2)
        g = grad_output.chunk(2)[0].to(torch.float64)
        z, z_ref = z.to(torch.float64), z_ref.to(torch.float64)
        multipliers = torch.zeros_like(z)
        for node, weight in zip(_NODES, _WEIGHTS):
            p = torch.softmax(z_ref + 0.5 * (node + 1) * (z - z_ref), dim=-1)
            multipliers += 0.5 * weight * p * (g - (p * g).sum(-1, keepdim=True))
        multipliers = multipliers.to(grad_input.dtype)
        return torch.cat([multipliers, multipliers])


RULES: dict[type[nn.Module], Callable] = {
    **{activation: captum_deep_lift.nonlinear for activation in ELEMENTWISE_ACTIVATIONS},
    nn.MaxPool1d: _maxpool_rule(F.max_pool1d_with_indices),
    nn.MaxPool2d: _maxpool_rule(F.max_pool2d_with_indices),
    nn.MaxPool3d: _maxpool_rule(F.max_pool3d_with_indices),
    SoftmaxOutput: softmax_path_rule,
}


def _fresh_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


@contextlib.contextmanager
def rescale_rule_for_all_activations(model: nn.Module):
    """Install this module's rules in Captum's registry (every elementwise activation
    through the rescale rule, the fixed max-pooling rule, the output softmax's path
    rule) and turn off ``inplace`` for the duration (Captum needs each module's input
    and output). Captum's registry and the models' ``inplace`` flags are restored
    afterwards, also on error.

    Every module with a rule also gets its input cloned first: Captum hooks a rule
    module's output tensor (to record its gradient) and the next rule module's input
    tensor (to replace its gradient). When one feeds the other directly (ReLU ->
    MaxPool in every ResNet stem) both hooks sit on the same tensor, the first records
    the gradient before the second's rule has replaced it, and completeness breaks
    (and a rule module's input also used elsewhere would lose the other gradients).
    """
    registry = captum_deep_lift.SUPPORTED_NON_LINEAR
    original = dict(registry)
    inplace = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    registry.update(RULES)
    handles = [
        m.register_forward_pre_hook(_fresh_inputs, prepend=True)
        for m in model.modules() if type(m) in registry
    ]
    for module in inplace:
        module.inplace = False
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        registry.clear()
        registry.update(original)
        for module in inplace:
            module.inplace = True


class _ExplainedOutput(nn.Module):
    """The model followed by the softmax (``prob``) so that DeepLIFT explains ``F_c``."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        self.model = model
        self.softmax = SoftmaxOutput(dim=-1) if output == "prob" else None

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
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
    **baseline_options,
) -> Attribution:
    """DeepLIFT attributions with a static baseline (black by default); diagnostics hold
    the convergence delta ``sum A - (F_c(x) - F_c(x'))`` and its relative size."""
    if baseline not in BASELINES:
        raise ConfigError(f"baseline={baseline!r} is not one of {sorted(BASELINES)}")
    references = BASELINES[baseline](x, image_ids=image_ids, seed=seed, **baseline_options)
    explained = _ExplainedOutput(model, output)
    chunk = max(1, internal_batch_size // 2)  # Captum runs input and reference together
    attributions, deltas = [], []
    # eval mode for the explanation only: the caller's model is left in its own mode
    with eval_mode(explained), rescale_rule_for_all_activations(explained), \
            torch.enable_grad():
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


register_method("deeplift", deeplift, catalog=CATALOG, straight_line=False,
                baseline_options=BASELINES, compiles=False)

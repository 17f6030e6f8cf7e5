"""Checks of what a caller hands the Python API (:func:`uni.attribute` and every metric of
:mod:`uni.metrics`), made once at the entry, so that a wrong input is a one-line
:class:`~uni.errors.InputError` saying what is wrong, not nonsense computed quietly or a
failure deep inside a method.

Images: a float tensor ``(N, C, H, W)``, ``N >= 1``, finite, in [0, 1] (other float
dtypes are converted to the model's; integer images are refused with the ``/ 255`` they
need). Targets: ``N`` class indices of the model. Attributions: shaped like the images,
finite. The model: one tensor of class scores per batch; explained in eval mode and left
in the caller's mode (:func:`eval_mode`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator

import torch

from uni.errors import InputError

_INTEGER_IMAGE_HINT = "images must be floats in [0, 1]: use x.float() / 255"


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    parameter = next(iter(model.parameters()), None)
    return parameter.dtype if parameter is not None else torch.float32


def check_images(model: torch.nn.Module, x) -> torch.Tensor:
    """``x`` as the model takes it (its float dtype), or an :class:`InputError`."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"x must be a torch.Tensor of images (N, C, H, W); got "
                         f"{type(x).__name__}")
    if x.dim() == 3:
        raise InputError(f"x must be a batch (N, C, H, W); got one image {tuple(x.shape)}: "
                         "use x[None]")
    if x.dim() != 4:
        raise InputError(f"x must be a batch (N, C, H, W); got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError("x is an empty batch (N = 0)")
    channels = getattr(model, "input_size", (None,))[0]
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"x has {x.shape[1]} channels; the model takes {channels} "
                         f"(shape (N, C, H, W), channels first)")
    if not x.is_floating_point():
        raise InputError(f"x is {x.dtype}: {_INTEGER_IMAGE_HINT}")
    finite = torch.isfinite(x)
    if not finite.all():
        raise InputError(f"x holds {int((~finite).sum())} non-finite values (NaN or Inf)")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        hint = "; images in [0, 255]? divide by 255" if low >= 0 and high <= 255 else ""
        raise InputError(f"x must be in [0, 1] (the model normalises inside); its values "
                         f"span [{low:.4g}, {high:.4g}]{hint}")
    return x.to(model_dtype(model))


def num_classes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """The model's number of classes: its ``num_classes``, else the width of its output."""
    known = getattr(model, "num_classes", None)
    if isinstance(known, int) and known > 0:
        return known
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])


def check_target(model: torch.nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """``target`` as ``N`` class indices (a long tensor on ``x``'s device; one index is
    used for every image), or an :class:`InputError`."""
    try:
        target = torch.as_tensor(target, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"target must be class indices; got {type(target).__name__}") from None
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise InputError(f"target must be integer class indices; got {target.dtype}")
    if target.dim() == 0:
        target = target.expand(x.shape[0])
    if target.dim() != 1 or target.shape[0] != x.shape[0]:
        raise InputError(f"target has shape {tuple(target.shape)}; it must hold one class per "
                         f"image ({x.shape[0]},)")
    classes = num_classes(model, x)
    outside = (target < 0) | (target >= classes)
    if outside.any():
        raise InputError(f"target {int(target[outside][0])} is not a class of the model "
                         f"(0..{classes - 1})")
    return target.long().clone()


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in eval mode for the block (an explanation of a model in train mode would
    use its batch's statistics and update its BatchNorm buffers); afterwards every module
    is back in the caller's mode. In eval mode no standard layer writes a buffer."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_model_output(model: torch.nn.Module, x: torch.Tensor) -> None:
    """An :class:`InputError` unless ``model`` maps images to a tensor of class scores
    ``(N, K)`` (a model returning a tuple or dict must be wrapped to return the logits)."""
    with torch.no_grad(), eval_mode(model):
        out = model(x[:1])
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the model must return class scores (N, classes) as one tensor; "
                         f"it returned {shape} (wrap it to return the logits)")


def check_attributions(x: torch.Tensor, attributions) -> torch.Tensor:
    if not isinstance(attributions, torch.Tensor):
        raise InputError(f"attributions must be a torch.Tensor shaped like x; got "
                         f"{type(attributions).__name__}")
    if attributions.shape != x.shape:
        raise InputError(f"attributions have shape {tuple(attributions.shape)}; they must be "
                         f"shaped like x {tuple(x.shape)}")
    finite = torch.isfinite(attributions)
    if not finite.all():
        raise InputError(f"attributions hold {int((~finite).sum())} non-finite values "
                         "(NaN or Inf)")
    return attributions if attributions.is_floating_point() else attributions.float()


def checked_metric(fn: Callable, reads_attributions: bool = True) -> Callable:
    """``fn`` (a metric ``(model, x, attributions, target, ...)``) with its inputs checked
    first and the model in eval mode (:func:`eval_mode`); same name, signature and
    documentation. A metric that computes its own
    attributions (``reads_attributions=False``) also takes ``None`` for them."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def metric(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        arguments = bound.arguments
        model = arguments["model"]
        arguments["x"] = x = check_images(model, arguments["x"])
        check_model_output(model, x)
        if reads_attributions or arguments["attributions"] is not None:
            arguments["attributions"] = check_attributions(x, arguments["attributions"])
        arguments["target"] = check_target(model, x, arguments["target"])
        with eval_mode(model):
            return fn(*bound.args, **bound.kwargs)

    return metric

"""UNI (and every other method) as a Quantus ``explain_func``.

    quantus.FaithfulnessCorrelation(...)(model=model, x_batch=x, y_batch=y, a_batch=None,
        explain_func=uni.quantus.explain, explain_func_kwargs={"method": "uni", "steps": 16})

Quantus calls ``explain_func(model=..., inputs=..., targets=..., **explain_func_kwargs)``
with NumPy batches and expects NumPy attributions back; this needs nothing from Quantus.
"""

from __future__ import annotations

import numpy as np
import torch

from uni.errors import ConfigError


def explain(
    model: torch.nn.Module,
    inputs: np.ndarray,
    targets,
    *,
    method: str = "uni",
    reduce_axes: tuple[int, ...] | None = None,
    device=None,
    **options,
) -> np.ndarray:
    """Attributions of ``method`` (:func:`uni.attribute` with ``options``, e.g. ``steps``,
    ``output``, UNI's ``eps``) for ``inputs`` ``(N, C, H, W)`` in [0, 1] and class indices
    ``targets``, as float32 NumPy shaped like ``inputs``. ``reduce_axes`` (as in
    ``quantus.explain``): axes summed over, kept with size 1 (``(1,)``: one map per image).
    ``device`` (Quantus passes the metric's): where the inputs go, which must be where the
    model is; by default where its parameters are."""
    from uni.methods import attribute

    inputs = np.asarray(inputs)
    if inputs.ndim != 4:
        raise ConfigError(f"inputs must be a channel-first batch (N, C, H, W); got shape "
                          f"{inputs.shape}")
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    x = torch.as_tensor(inputs, dtype=torch.float32, device=device)
    target = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
    attributions = attribute(model, x, target, method, **options).detach().cpu().numpy()
    if reduce_axes is not None:
        attributions = attributions.sum(axis=tuple(reduce_axes), keepdims=True)
    return attributions.astype(np.float32)

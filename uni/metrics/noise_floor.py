"""The restart noise floor of an explanation: how much two explanations of the same,
unperturbed image agree when only the method's own randomness differs (independent noise
draws for a noise baseline; an independent random start for an optimisation such as UNI's
baseline search).

A robustness score (Ghorbani et al. 2019; :mod:`uni.metrics.robustness`) compares ``A(x)``
with ``A(x + delta)``; a method whose own restarts already disagree cannot score above
this floor however small ``delta`` is, so robustness is read against it. Same scores as
robustness: Spearman rank correlation and top-``k`` intersection of the channel-summed
maps. A method with nothing random in it (``MethodSpec.restarts`` false, e.g.
IG-black) has a floor of exactly 1 and is not explained again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.errors import ConfigError
from uni.methods import Explainer
from uni.metrics._common import positive_int
from uni.metrics.robustness import K, compare_maps

RESTART = 1  # the independent restart compared with the explanation being scored


def metric_names() -> list[str]:
    return ["noise_floor_spearman", "noise_floor_intersection"]


def noise_floor(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    k: int = K,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per image: Spearman and top-``k`` intersection between ``attributions`` and an
    independent restart of the method ``explainer`` explains (the runner passes the
    explained method as a :class:`uni.methods.Explainer`)."""
    if explainer is None:
        raise ConfigError("noise_floor needs explainer=<uni.methods.Explainer> (the runner "
                          "passes the explained method's)")
    k = positive_int("k", k)
    if explainer.restarts:
        again = explainer(x, target, image_ids=image_ids, seed=seed,
                          restart=RESTART).attributions
    else:
        again = attributions
    rho, overlap = compare_maps(attributions, again, k)
    return dict(zip(metric_names(), (rho.float(), overlap.float())))

"""The restart noise floor of an explanation: how much two explanations of the same,
unperturbed image agree when only the method's own randomness differs (independent noise
draws for a noise baseline; an independent random start for an optimisation such as UNI's
baseline search).

A robustness score (Ghorbani et al. 2019; :mod:`uni.metrics.robustness`) compares ``A(x)``
with ``A(x + delta)``; a method whose own restarts already disagree cannot score above
this floor however small ``delta`` is, so robustness is read against it. Same scores as
robustness: Spearman rank correlation and top-``k`` intersection of the channel-summed
maps (magnitude by default, as robustness compares them: ``compare``). A method with
nothing random in it (``MethodSpec.restarts`` false, e.g. IG-black) has a floor of exactly
1 and is not explained again.

``pair``: ``restarts`` (default) compares two independent restarts (restarts 1 and 2:
both with new draws and, for UNI, a random start), so the floor is the agreement of two
draws of the same kind; ``explained`` compares the explanation being scored (for UNI
the deterministic start at ``x``) with one restart, which mixes two kinds of explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.errors import ConfigError
from uni.methods import Explainer
from uni.metrics._common import positive_int
from uni.metrics._registry import register_metric
from uni.metrics.robustness import COMPARE, COMPARISONS, GHORBANI, K, compare_maps

CATALOG = [{  # read by uni.catalog without importing this module
    "name": "noise_floor", "order": 100,
    "scores": [["noise_floor_spearman", "higher"], ["noise_floor_intersection", "higher"]],
    "citation": f"this benchmark's reference for robustness scores ({GHORBANI})",
}]

RESTARTS = (1, 2)  # the two independent restarts compared (pair="restarts")
PAIRS = ("restarts", "explained")
PAIR = "restarts"


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
    pair: str = PAIR,
    compare: str = COMPARE,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per image: Spearman and top-``k`` intersection between two explanations of the
    method ``explainer`` explains (the runner passes the explained method as a
    :class:`uni.methods.Explainer`) that differ only in its randomness: two independent
    restarts, or ``attributions`` and one restart (``pair``; module docstring)."""
    if explainer is None:
        raise ConfigError("noise_floor needs explainer=<uni.methods.Explainer> (the runner "
                          "passes the explained method's)")
    k = positive_int("k", k)
    if pair not in PAIRS:
        raise ConfigError(f"pair={pair!r} is not one of {list(PAIRS)}")
    if compare not in COMPARISONS:
        raise ConfigError(f"compare={compare!r} is not one of {list(COMPARISONS)}")
    first, again = attributions, attributions
    if explainer.restarts:
        restarts = RESTARTS if pair == "restarts" else RESTARTS[:1]
        drawn = [explainer(x, target, image_ids=image_ids, seed=seed, restart=r).attributions
                 for r in restarts]
        first, again = (drawn[0], drawn[1]) if pair == "restarts" else (attributions, drawn[0])
    rho, overlap = compare_maps(first, again, k, compare)
    return dict(zip(metric_names(), (rho.float(), overlap.float())))


register_metric("noise_floor", noise_floor, catalog=CATALOG, record_names=metric_names)

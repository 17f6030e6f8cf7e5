"""Randomisation sanity checks (Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018,
"Sanity Checks for Saliency Maps", NeurIPS; the random-logit test of Sixt, Granz &
Landgraf 2020, "When Explanations Lie", ICML).

A map that survives randomising the model's weights explains the image, not the model.
The model's **block groups** are its top-level children that hold parameters, in forward
order, with a ``Sequential`` of several parameterised children (timm's ``blocks``,
ResNet's ``layer1``..) split into its children; for EfficientNet-Lite: ``conv_stem``,
``blocks.0`` .. ``blocks.6``, ``conv_head``, ``classifier`` (BatchNorm folded into the
convs by the runtime has no parameters of its own; see below). A group is randomised by
drawing each of its parameter tensors from a normal with the tensor's own mean and
standard deviation, keyed on ``(seed, parameter)`` (the same random model for every image
and batch); BatchNorm's running statistics are buffers and stay as trained.

- **cascading** ``@k``: the last ``k`` groups randomised (``@1`` the logits layer only,
  up to every group: full randomisation), the method explaining the randomised model;
- **independent** ``@k``: only the ``k``-th group from the logits randomised;
- **random_logit**: the original model, a class other than the explained one (drawn
  uniformly, keyed on the image).

Each compares the new map with the original one: Spearman of ``|A|`` (``spearman_abs``)
and of ``A`` (``spearman``), SSIM of the maps normalised to [0, 1] (``ssim``: ``|A|``
over its maximum) and the top-``k`` intersection of ``|A|`` (``topk``). Lower similarity
is better: the map depends on what it claims to explain. Maps are channel-summed. Where a
map is constant the Spearman correlations are 1 against an identical map and 0 against
any other (:func:`rank_similarity`).

A model built by :func:`uni.models.set_runtime` (BatchNorm folded) is randomised in its
trained parameterisation, a top-level BatchNorm with the group of the conv it follows,
and built again with the same runtime options: the block groups are the runtime
model's, and UNI's unlearning step, which moves in the trained parameters, moves in
the randomised ones.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from uni import rng
from uni.errors import ConfigError
from uni.methods import Explainer
from uni.metrics._common import pixel_map, positive_int, spearman, top_k_intersection
from uni.metrics._registry import register_metric
from uni.models import set_runtime, trained_parameterisation

CATALOG = [{  # read by uni.catalog without importing this module
    "name": "sanity", "order": 120,
    # similarity to the maps of randomised models: lower is better (the map depends on them)
    "scores": [
        [r"sanity_(cascading|independent)_(spearman_abs|spearman|ssim|topk)@\d+", "lower"],
        [r"sanity_random_logit_(spearman_abs|spearman|ssim|topk)", "lower"],
    ],
    "citation": 'Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for '
                'Saliency Maps", NeurIPS; the random-logit test of Sixt, Granz & Landgraf '
                '2020, "When Explanations Lie", ICML',
}]

MODES = ("cascading", "independent")
QUANTITIES = ("spearman_abs", "spearman", "ssim", "topk")
K = 1000  # pixels in the top-k intersection (clipped to H*W), as robustness's


def metric_names(modes: Sequence[str] = MODES, random_logit: bool = True) -> list[str]:
    """Record names of the first step of each mode (the steps run ``@1`` .. ``@G``, G the
    model's number of block groups) and of the random-logit test."""
    names = [f"sanity_{mode}_{q}@1" for mode in modes for q in QUANTITIES]
    return names + ([f"sanity_random_logit_{q}" for q in QUANTITIES] if random_logit else [])


def validate_options(modes: Sequence[str] = MODES, random_logit: bool = True, k: int = K
                     ) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown or not len(modes) and not random_logit:
        raise ConfigError(f"modes={list(modes)!r} must be a list from {list(MODES)} (or empty "
                          "with random_logit: true)")
    positive_int("k", k)


def block_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the model's block groups in forward order (module doc)."""
    net = getattr(model, "net", model)
    groups = []
    for name, child in net.named_children():
        if not any(True for _ in child.parameters()):
            continue
        inner = [(f"{name}.{n}", c) for n, c in child.named_children()
                 if any(True for _ in c.parameters())]
        groups += inner if isinstance(child, nn.Sequential) and len(inner) > 1 else [(name, child)]
    return groups


def group_parameters(network: nn.Module, names: Sequence[str]
                     ) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """The parameters of ``network`` (a model as trained, BatchNorm unfolded) under each
    block group ``names`` (the runtime model's), keyed ``<module>.<parameter>``: a
    parameterised child that is no group there (a BatchNorm folded into the conv before
    it) belongs to the group before it, and parameters held by the network itself (a
    ViT's ``cls_token``, ``pos_embed``) to the first group, beside the embedding."""
    groups: dict[str, list] = {name: [] for name in names}
    current = names[0]
    for name, module in block_groups(network):
        current = name if name in groups else current
        groups[current] += [(f"{name}.{n}", p) for n, p in module.named_parameters()]
    net = getattr(network, "net", network)
    groups[names[0]] += [(n, p) for n, p in net.named_parameters(recurse=False)]
    return groups


def randomised(model: nn.Module, groups: Sequence[str], seed: int) -> nn.Module:
    """A copy of ``model`` whose block groups named ``groups`` are randomised (module
    doc); the model itself is unchanged. A runtime model (:func:`uni.models.set_runtime`)
    is randomised in its trained parameterisation and built again with the same runtime
    options, so that a method stepping in the trained parameters (UNI's unlearning)
    steps in the randomised ones: one random network for the forward pass and the step."""
    trained = trained_parameterisation(model)
    copied = copy.deepcopy(trained)
    names = [name for name, _ in block_groups(model)]
    parameters = group_parameters(copied, names)
    with torch.no_grad():
        for group in groups:
            for key, parameter in parameters[group]:
                generator = rng.torch_generator(seed, key, "sanity/randomise")
                mean, std = parameter.float().mean(), parameter.float().std()
                std = std if parameter.numel() > 1 and torch.isfinite(std) else mean.abs()
                draw = torch.randn(parameter.shape, generator=generator)
                parameter.copy_((mean + std * draw).to(parameter))
    if trained is model:
        return copied
    return set_runtime(copied, **model.runtime_options)


def steps(model: nn.Module, modes: Sequence[str]) -> list[tuple[str, int, list[str]]]:
    """``(mode, k, groups randomised)`` for every step of ``modes``."""
    names = [name for name, _ in reversed(block_groups(model))]  # from the logits
    plan = []
    for mode in modes:
        for k in range(1, len(names) + 1):
            plan.append((mode, k, names[:k] if mode == "cascading" else [names[k - 1]]))
    return plan


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004; 7x7 uniform windows, data range 1, as scikit-image's
    default) of ``(N, H, W)`` maps in [0, 1]."""
    c1, c2, window = 0.01**2, 0.03**2, 7
    a, b = a[:, None].double(), b[:, None].double()
    window = min(window, a.shape[-1], a.shape[-2])
    pool = torch.nn.functional.avg_pool2d

    def mean(t):
        return pool(t, window, stride=1)

    count = window * window
    mu_a, mu_b = mean(a), mean(b)
    # sample (co)variances, as scikit-image's default
    var_a = (mean(a * a) - mu_a**2) * count / (count - 1)
    var_b = (mean(b * b) - mu_b**2) * count / (count - 1)
    cov = (mean(a * b) - mu_a * mu_b) * count / (count - 1)
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return index.flatten(1).mean(1).float()


def _normalised(maps: torch.Tensor) -> torch.Tensor:
    magnitude = maps.abs()
    return magnitude / magnitude.flatten(1).amax(1).clamp_min(1e-30).view(-1, 1, 1)


def rank_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Spearman of ``(N, K)`` maps, defined where a map is constant (where the
    correlation is not): 1 for identical rows (a map that never changes: a constant
    trivial map), 0 for a constant row against another (no order shared: a map that
    collapsed to zero under randomisation has changed as much as a map can)."""
    constant = (a == a[:, :1]).all(1) | (b == b[:, :1]).all(1)
    same = (a == b).all(1)
    value = spearman(a, b)
    return torch.where(same, torch.ones_like(value),
                       torch.where(constant, torch.zeros_like(value), value))


def similarities(original: torch.Tensor, other: torch.Tensor, k: int = K
                 ) -> dict[str, torch.Tensor]:
    """The four similarities (module doc) between two batches of attributions."""
    a, b = pixel_map(original), pixel_map(other)
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    return {
        "spearman_abs": rank_similarity(flat_a.abs(), flat_b.abs()),
        "spearman": rank_similarity(flat_a, flat_b),
        "ssim": ssim(_normalised(a), _normalised(b)),
        "topk": top_k_intersection(flat_a.abs(), flat_b.abs(), k),
    }


def random_classes(num_classes: int, target: torch.Tensor, image_ids: Sequence[str],
                   seed: int) -> torch.Tensor:
    """A class other than ``target`` per image, uniform, keyed on the image."""
    shifts = rng.per_image(lambda g: torch.randint(1, num_classes, (), generator=g),
                           image_ids, seed, "sanity/random_logit", target.device)
    return (target + shifts) % num_classes


def sanity(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    modes: Sequence[str] = MODES,
    random_logit: bool = True,
    k: int = K,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per image, the similarity of ``attributions`` to the method's maps of randomised
    models (``sanity_<mode>_<quantity>@<k>``) and of a random other class
    (``sanity_random_logit_<quantity>``); module docstring."""
    if explainer is None:
        raise ConfigError("sanity needs explainer=<uni.methods.Explainer> (the runner passes "
                          "the explained method's)")
    validate_options(modes, random_logit, k)
    image_ids = list(image_ids) if image_ids is not None else rng.content_ids(x)
    out = {}
    for mode, step, groups in steps(model, modes):
        other = Explainer(randomised(model, groups, seed), explainer.method, explainer.options,
                          explainer.output)
        again = other(x, target, image_ids=image_ids, seed=seed).attributions
        for quantity, value in similarities(attributions, again, k).items():
            out[f"sanity_{mode}_{quantity}@{step}"] = value
    if random_logit:
        classes = random_classes(int(model(x[:1]).shape[-1]), target, image_ids, seed)
        again = explainer(x, classes, image_ids=image_ids, seed=seed).attributions
        for quantity, value in similarities(attributions, again, k).items():
            out[f"sanity_random_logit_{quantity}"] = value
    return out


register_metric("sanity", sanity, catalog=CATALOG, record_names=metric_names,
                validate=validate_options)

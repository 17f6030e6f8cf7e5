"""Evaluators (docs/design.md §3): MuFidelity, deletion / insertion, robustness, Riemann
stability."""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import Linear
from uni.data import build_dataset
from uni.errors import ConfigError
from uni.methods import Explainer, explain
from uni.methods.baselines import blur
from uni.methods.path import integrated_gradients, riemann_rule
from uni.metrics import (
    METRICS,
    NEEDS_EXPLAINER,
    RUNNER_ARGUMENTS,
    AttackOptions,
    check_options,
    deletion,
    deletion_curve,
    insertion,
    insertion_curve,
    mufidelity,
    robustness,
    robustness_attack,
    stability,
)
from uni.metrics._common import ranks, spearman, top_k_intersection
from uni.metrics.mufidelity import cell_index, draw_subsets
from uni.metrics.robustness import compare_maps, topk_objective_and_gradient
from uni.metrics.stability import multi_budget_attributions
from uni.models import class_score, smooth_surrogate

# the package re-exports the functions under the modules' names: reach the modules
di_module = importlib.import_module("uni.metrics.deletion_insertion")
rob_module = importlib.import_module("uni.metrics.robustness")
stab_module = importlib.import_module("uni.metrics.stability")
CONF = Path(__file__).resolve().parents[1] / "conf" / "eval"


class TinyCNN(nn.Module):
    def __init__(self, classes=5, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes),
        )
        self.eval()

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def tiny():
    return TinyCNN()


@pytest.fixture(scope="module")
def images16():
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _ids(n, prefix="img"):
    return [f"{prefix}{i}" for i in range(n)]


# --- MuFidelity -------------------------------------------------------------------------


def test_mufidelity_is_one_for_the_exact_attribution_of_a_linear_model():
    model = Linear()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    target = torch.zeros(3, dtype=torch.long)
    values = mufidelity(model, x, model.w.detach() * x, target, output="logit", grid=4,
                        subsets=32, image_ids=_ids(3))
    assert torch.allclose(values, torch.ones(3), atol=1e-5)


def test_mufidelity_of_a_random_attribution_is_near_zero():
    model = Linear()
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    values = mufidelity(model, x, noise, torch.zeros(8, dtype=torch.long), output="logit",
                        grid=4, subsets=64, image_ids=_ids(8))
    assert values.mean().abs() < 0.3
    assert values.abs().max() < 0.6


def test_mufidelity_batched_equals_a_plain_loop_over_the_same_subsets(tiny, images16):
    x, ids = images16, _ids(4)
    target = tiny(x).argmax(-1)
    attributions = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    grid, subsets, fraction = 3, 12, 0.3
    batched = mufidelity(tiny, x, attributions, target, grid=grid, subsets=subsets,
                         fraction=fraction, batch_size=5, image_ids=ids, seed=7)
    chosen = draw_subsets(ids, 7, grid, subsets, fraction)
    cells = cell_index(16, 16, grid)
    for n in range(4):
        drops, sums = [], []
        with torch.no_grad():
            full = class_score(tiny(x[n : n + 1]), target[n : n + 1]).item()
            for s in range(subsets):
                removed = chosen[n, s][cells]  # (H, W)
                masked = torch.where(removed, torch.zeros(()), x[n])
                drops.append(full - class_score(tiny(masked[None]), target[n : n + 1]).item())
                sums.append(attributions[n].sum(0)[removed].sum().item())
        expected = np.corrcoef(sums, drops)[0, 1]
        # float32 rounding, not bookkeeping: a batched and a one-image forward pass round
        # differently (2.6e-5 on one image with torch 2.14.1; a wrong subset moves it ~0.1)
        assert batched[n].item() == pytest.approx(expected, abs=1e-4)


# --- deletion / insertion ---------------------------------------------------------------


def _plain_curve(model, x, attributions, target, steps, start, end, output):
    """One image at a time, one step at a time: the definition, written out."""
    n, _, h, w = x.shape
    curves = []
    for i in range(n):
        order = np.argsort(-attributions[i].sum(0).flatten().numpy(), kind="stable")
        row = []
        for k in range(steps + 1):
            count = k * h * w // steps
            mask = torch.zeros(h * w, dtype=torch.bool)
            mask[torch.as_tensor(order[:count], dtype=torch.long)] = True
            image = torch.where(mask.view(1, h, w), end[i], start[i])
            with torch.no_grad():
                row.append(class_score(model(image[None]), target[i : i + 1], output).item())
        curves.append(row)
    fractions = np.array([k * h * w // steps for k in range(steps + 1)]) / (h * w)
    return np.array(curves), np.trapezoid(np.array(curves), fractions, axis=1)


@pytest.mark.parametrize("steps", [7, 16])
def test_deletion_and_insertion_equal_a_plain_per_step_loop(tiny, images16, steps):
    x = images16
    target = tiny(x).argmax(-1)
    attributions = torch.randn(x.shape, generator=torch.Generator().manual_seed(6))
    attributions[0, :, :4, :4] = 0.0  # ties: broken in raster order
    curve, auc = _plain_curve(tiny, x, attributions, target, steps, x, torch.zeros_like(x), "prob")
    ours = deletion_curve(tiny, x, attributions, target, steps=steps, batch_size=5)
    assert np.allclose(ours.numpy(), curve, atol=1e-6)
    assert np.allclose(deletion(tiny, x, attributions, target, steps=steps, batch_size=3).numpy(),
                       auc, atol=1e-6)
    blurred = blur(x, sigma=5.0)
    curve, auc = _plain_curve(tiny, x, attributions, target, steps, blurred, x, "prob")
    ours = insertion_curve(tiny, x, attributions, target, steps=steps, batch_size=5)
    assert np.allclose(ours.numpy(), curve, atol=1e-6)
    assert np.allclose(insertion(tiny, x, attributions, target, steps=steps).numpy(), auc,
                       atol=1e-6)


def test_curves_start_and_end_where_they_should(tiny, images16):
    x = images16
    target = tiny(x).argmax(-1)
    a = torch.randn(x.shape)
    with torch.no_grad():
        at = lambda images: class_score(tiny(images), target)  # noqa: E731
        d = deletion_curve(tiny, x, a, target, steps=4, fill=0.5)
        i = insertion_curve(tiny, x, a, target, steps=4, blur_sigma=20.0)
        assert torch.allclose(d[:, 0], at(x), atol=1e-6)
        assert torch.allclose(d[:, -1], at(torch.full_like(x, 0.5)), atol=1e-6)
        assert torch.allclose(i[:, 0], at(blur(x, 20.0)), atol=1e-6)
        assert torch.allclose(i[:, -1], at(x), atol=1e-6)
        # the runner's precomputed F_c(x) is used as is
        given = torch.full((4,), 7.0)
        assert (deletion_curve(tiny, x, a, target, steps=4, score_input=given)[:, 0] == 7).all()


def test_deletion_and_insertion_rank_the_true_ordering_above_a_random_one():
    model = Linear()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    target = torch.zeros(4, dtype=torch.long)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    w = model.w.detach()
    true_deletion = deletion(model, x, w * x, target, output="logit", steps=16)
    random_deletion = deletion(model, x, noise, target, output="logit", steps=16)
    assert (true_deletion < random_deletion).all()
    blurred = blur(x, sigma=5.0)
    true_insertion = insertion(model, x, w * (x - blurred), target, output="logit", steps=16)
    random_insertion = insertion(model, x, noise, target, output="logit", steps=16)
    assert (true_insertion > random_insertion).all()


# --- stability --------------------------------------------------------------------------


def test_ig_is_exact_at_one_step_for_a_linear_model():
    model = Linear()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(10))
    target = torch.zeros(2, dtype=torch.long)
    values = stability(model, x, None, target, output="logit",
                       explainer=Explainer(model, "ig_black", {"steps": 8, "rule": "right"},
                                           output="logit"),
                       budgets=[1, 2, 3, 8], reference=16, image_ids=_ids(2))
    assert set(values) == set(stab_module.metric_names([1, 2, 3, 8], 16))
    for b in (1, 2, 3, 8):
        assert values[f"stability_l1@{b}"].max() < 1e-6
        assert values[f"stability_spearman@{b}"].min() > 1 - 1e-6
        assert values[f"stability_gap@{b}"].max() < 1e-5
    assert values["stability_gap@16"].max() < 1e-5


@pytest.mark.parametrize("rule", ["right", "left", "middle", "trapezoid"])
def test_shared_budgets_equal_integrated_gradients_per_budget(tiny, images16, rule):
    x = images16[:2]
    target = tiny(x).argmax(-1)
    baseline = blur(x, 30.0)
    budgets = [2, 3, 4, 8]
    shared = multi_budget_attributions(tiny, x, baseline, target, budgets, rule, "prob", 5)
    for b in budgets:
        expected = integrated_gradients(tiny, x, baseline, target, b, rule, "prob", 5)
        assert torch.allclose(shared[b], expected.attributions, atol=1e-6, rtol=1e-4)


def test_stability_is_nan_for_deeplift_and_small_budgets_are_worse(tiny, images16):
    x = images16[:2]
    target = tiny(x).argmax(-1)
    values = stability(tiny, x, None, target, explainer=Explainer(tiny, "deeplift"),
                       budgets=[1, 4], reference=8)
    assert all(torch.isnan(v).all() for v in values.values())
    values = stability(tiny, x, None, target,
                       explainer=Explainer(tiny, "ig_uniform", {"samples": 2, "rule": "middle"}),
                       budgets=[1, 16],
                       reference=64, image_ids=_ids(2))
    assert (values["stability_l1@1"] > values["stability_l1@16"]).all()
    assert (values["stability_gap@64"] < values["stability_gap@1"] + 1e-6).all()
    values = stability(tiny, x, None, target,
                       explainer=Explainer(tiny, "uni", {"pgd_steps": 2, "eps": 0.05}),
                       budgets=[2], reference=4)
    assert all(torch.isfinite(v).all() for v in values.values())


@pytest.mark.parametrize("method,options", [
    ("ig_black", {}), ("ig_blur", {"sigma": 30.0}), ("ig_uniform", {"samples": 1}),
    ("ig_gaussian", {"sigma": 0.1}), ("deeplift", {}),
    ("uni", {"pgd_steps": 2, "eps": 0.05, "eta": 0.5}),
])
def test_method_baselines_are_the_methods_own(tiny, images16, method, options):
    x, ids = images16[:2], _ids(2)
    target = tiny(x).argmax(-1)
    ours, draws = Explainer(tiny, method, {"steps": 2, **options}).baselines(
        x, target, image_ids=ids, seed=3)
    theirs = explain(tiny, x, target, method, image_ids=ids, seed=3,
                     **({} if method == "deeplift" else {"steps": 2}), **options).baselines
    assert draws == 1
    if method == "deeplift":  # no straight-line path: no baseline for the path metrics
        assert ours is None
        return
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_noise_baselines_give_every_draw(tiny, images16):
    x = images16[:2]
    baselines, draws = Explainer(tiny, "ig_gaussian", {"samples": 3}).baselines(
        x, tiny(x).argmax(-1), image_ids=_ids(2))
    assert draws == 3 and baselines.shape == (6, 3, 16, 16)
    assert not torch.allclose(baselines[:2], baselines[2:4])


# --- robustness -------------------------------------------------------------------------


def test_rank_helpers_match_scipy():
    from scipy.stats import rankdata, spearmanr

    a = torch.tensor([[3.0, 1.0, 1.0, 2.0, 5.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0, 2.0]])
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [6.0, 2.0, 1.0, 3.0, 3.0, 0.0]])
    assert np.allclose(ranks(a).numpy(), rankdata(a.numpy(), axis=1) - 1)
    expected = [spearmanr(a[i], b[i]).statistic for i in range(2)]
    assert np.allclose(spearman(a, b).numpy(), expected, atol=1e-6)
    assert top_k_intersection(a, b, 2).tolist() == [0.5, 0.5]  # ties: lower index first


def test_identical_maps_and_a_zero_perturbation_score_one(tiny, images16):
    x, ids = images16, _ids(4)
    target = tiny(x).argmax(-1)
    a = explain(tiny, x, target, "ig_black", steps=4, image_ids=ids).attributions
    rho, overlap = compare_maps(a, a, k=50)
    assert torch.allclose(rho, torch.ones(4)) and torch.equal(overlap, torch.ones(4))
    for attack in ("random", "fgsm", "topk"):
        values = robustness(tiny, x, a, target, explainer=Explainer(tiny, "ig_black", {"steps": 4}),
                            attack=attack, eps=0.0, k=50, image_ids=ids)
        assert torch.allclose(values[f"robustness_{attack}_spearman"], torch.ones(4), atol=1e-6)
        assert torch.equal(values[f"robustness_{attack}_intersection"], torch.ones(4))
        assert torch.equal(values[f"robustness_{attack}_skipped"], torch.zeros(4))


@pytest.mark.parametrize("attack,method,options", [
    ("random", "ig_black", {"steps": 4}), ("fgsm", "ig_black", {"steps": 4}),
    ("topk", "ig_black", {"steps": 4}), ("topk", "ig_gaussian", {"steps": 2, "samples": 2}),
    ("topk", "uni", {"steps": 2, "pgd_steps": 2, "eta": 0.5}),
])
def test_attacks_keep_the_label_and_stay_in_the_ball(tiny, images16, attack, method, options):
    x, ids = images16, _ids(4)
    target = tiny(x).argmax(-1)
    a = explain(tiny, x, target, method, image_ids=ids, **options).attributions
    eps = 8 / 255
    result = robustness_attack(tiny, x, a, target, explainer=Explainer(tiny, method, options),
                               attack=attack, options=AttackOptions(eps=eps, steps=3, k=40),
                               image_ids=ids)
    assert result.kept.any()
    kept = result.kept
    delta = result.x_adv[kept] - x[kept]
    assert delta.abs().max() <= eps + 1e-6 and delta.abs().max() > 0
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():
        assert torch.equal(tiny(result.x_adv[kept]).argmax(-1), target[kept])


def test_the_topk_attack_does_not_apply_to_deeplift(tiny, images16):
    """DeepLIFT has no straight-line surrogate to attack: its top-k cells are NaN, skipped
    included (recorded as not applicable), never a number from a stand-in method."""
    x, ids = images16, _ids(4)
    target = tiny(x).argmax(-1)
    a = explain(tiny, x, target, "deeplift", image_ids=ids).attributions
    deeplift = Explainer(tiny, "deeplift")
    values = robustness(tiny, x, a, target, explainer=deeplift,
                        attack=["random", "topk"], eps=8 / 255, k=40, image_ids=ids)
    assert all(torch.isnan(values[f"robustness_topk_{kind}"]).all()
               for kind in ("spearman", "intersection", "linf", "skipped"))
    assert torch.isfinite(values["robustness_random_skipped"]).all()
    with pytest.raises(ConfigError, match="no baseline"):
        robustness_attack(tiny, x, a, target, explainer=deeplift, attack="topk",
                          options=AttackOptions(eps=8 / 255, steps=2, k=40), image_ids=ids)


class Brightness(nn.Module):
    """Class 0 iff the mean pixel is above 0.5: easy to flip for images near 0.5."""

    def forward(self, x):
        score = 50 * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([score, -score], dim=1)


def test_images_whose_label_cannot_be_kept_are_skipped_not_dropped():
    texture = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.stack([torch.full((3, 8, 8), 0.5005), 0.75 + 0.1 * texture])
    target, ids = torch.zeros(2, dtype=torch.long), ["near", "far"]
    a = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    values = robustness(Brightness(), x, a, target,
                        explainer=Explainer(Brightness(), "ig_black", {"steps": 2}),
                        attack=["fgsm", "random"], eps=0.1,
                        halvings=2, k=10, image_ids=ids)
    assert set(values) == set(rob_module.metric_names(["fgsm", "random"]))
    # fgsm lowers every pixel by >= 0.025: the first image flips at every halving
    assert values["robustness_fgsm_skipped"].tolist() == [1.0, 0.0]
    for attack in ("fgsm", "random"):
        skipped = values[f"robustness_{attack}_skipped"]
        assert skipped[1] == 0
        for name in ("spearman", "intersection", "linf"):
            column = values[f"robustness_{attack}_{name}"]
            assert torch.equal(torch.isnan(column), skipped.bool())
    assert values["robustness_random_linf"][1] == pytest.approx(0.1, abs=1e-6)
    assert values["robustness_random_intersection"][1] <= 1


def test_random_attack_is_keyed_on_the_image_not_the_batch(tiny, images16):
    x, ids = images16, _ids(4)
    target = tiny(x).argmax(-1)
    small = AttackOptions(eps=0.01)
    together = robustness_attack(tiny, x, x, target, attack="random", options=small,
                                 image_ids=ids, seed=4)
    alone = robustness_attack(tiny, x[2:3], x[2:3], target[2:3], attack="random",
                              options=small, image_ids=ids[2:3], seed=4)
    assert torch.equal(together.x_adv[2], alone.x_adv[0])
    other_seed = robustness_attack(tiny, x[2:3], x[2:3], target[2:3], attack="random",
                                   options=small, image_ids=ids[2:3], seed=5)
    assert not torch.equal(other_seed.x_adv, alone.x_adv)


def test_surrogate_replaces_relu_family_and_stays_close(tiny, images16):
    surrogate = smooth_surrogate(tiny, beta=50.0)
    kinds = {type(m) for m in surrogate.modules()}
    assert not kinds & {nn.ReLU, nn.ReLU6}
    assert {type(m) for m in tiny.modules()} & {nn.ReLU, nn.ReLU6}  # original untouched
    with torch.no_grad():
        assert (surrogate(images16) - tiny(images16)).abs().max() < 0.05
    assert not any(p.requires_grad for p in surrogate.parameters())


@pytest.mark.parametrize("compare", ["magnitude", "signed"])
@pytest.mark.parametrize("hvp,tolerance", [("autograd", 1e-6), ("finite_difference", 1e-2),
                                           ("forward_difference", 1e-2)])
def test_topk_gradient_equals_autograd_through_integrated_gradients(tiny, images16, hvp,
                                                                    tolerance, compare):
    surrogate = smooth_surrogate(tiny).double()
    x = images16[:2].double()
    baseline = blur(x, 30.0)
    target = tiny(images16[:2]).argmax(-1)
    top = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3)) > 0.8
    alphas, weights = (t.double() for t in riemann_rule(4, "middle"))
    objective, gradient = topk_objective_and_gradient(
        surrogate, x, baseline, 1, target, top, alphas, weights, "prob", 3, hvp, 1e-4, compare
    )
    xr = x.clone().requires_grad_(True)
    a = integrated_gradients(surrogate, xr, baseline, target, 4, "middle", "prob", 3,
                             create_graph=True).attributions
    m = a.abs().sum(1) if compare == "magnitude" else a.sum(1)
    reference = (m * top).flatten(1).sum(1) / m.abs().flatten(1).sum(1)
    (expected,) = torch.autograd.grad(reference.sum(), xr)
    assert torch.allclose(objective.double(), reference.detach(), atol=1e-6)
    assert (gradient - expected).norm() / expected.norm() < tolerance


def test_topk_attack_moves_attributions_more_than_random_noise(lite0):
    """Two embedded photos at 128 px (Lite0 still classifies them confidently there:
    Egyptian cat 0.85, espresso 1.0) to keep the attack's double passes cheap on CPU."""
    config = dict(lite0.data_config, input_size=(3, 128, 128))
    dataset = build_dataset("embedded", config, limit=2)
    x = torch.stack([dataset[i].image for i in range(2)])
    ids = [dataset[i].image_id for i in range(2)]
    with torch.no_grad():
        target = lite0(x).argmax(-1)
    options = {"steps": 4}
    a = explain(lite0, x, target, "ig_black", image_ids=ids, **options).attributions
    common = dict(explainer=Explainer(lite0, "ig_black", options), eps=8 / 255, k=500,
                  image_ids=ids, batch_size=8)
    topk = robustness(lite0, x, a, target, attack="topk", steps=3, **common)
    noise = robustness(lite0, x, a, target, attack="random", **common)
    assert topk["robustness_topk_skipped"].sum() == 0
    assert (topk["robustness_topk_linf"] <= 8 / 255 + 1e-6).all()
    attacked = topk["robustness_topk_intersection"]
    assert attacked.mean() < noise["robustness_random_intersection"].mean()


# --- options, registry, configs ---------------------------------------------------------


@pytest.mark.parametrize("metric,options,name", [
    (deletion, {"steps": 0}, "steps"),
    (insertion, {"blur_sigma": -1.0}, "blur_sigma"),
    (robustness, {"attack": "pgd", "explainer": "ig_black"}, "attack"),
    (robustness, {"eps": -0.1, "explainer": "ig_black"}, "eps"),
    (robustness, {"k": 0, "explainer": "ig_black"}, "k"),
    (robustness, {"hvp": "exact", "explainer": "ig_black"}, "hvp"),
    (robustness, {"softplus_beta": 0.0, "explainer": "ig_black"}, "softplus_beta"),
    (robustness, {"explainer": None}, "explainer"),
    (stability, {"budgets": [4, 0], "explainer": "ig_black"}, "budgets"),
    (stability, {"reference": 2.5, "explainer": "ig_black"}, "reference"),
    (Explainer, {"method": "ig_blak"}, "method"),
    (stability, {}, "explainer"),
    (robustness, {}, "explainer"),
])
def test_invalid_options_are_one_line_config_errors(tiny, images16, metric, options, name):
    x = images16[:1]
    if isinstance(options.get("explainer"), str):
        options = {**options, "explainer": Explainer(tiny, options["explainer"])}
    with pytest.raises(ConfigError, match=name) as err:
        if metric is Explainer:
            Explainer(tiny, **options)
        else:
            metric(tiny, x, x, torch.zeros(1, dtype=torch.long), **options)
    assert "\n" not in str(err.value)


def test_options_are_checked_before_any_work():
    check_options("robustness", {"attack": "fgsm", "eps": 0.01})
    check_options("mufidelity", {"grid": 4})
    with pytest.raises(ConfigError, match=r"eval.deletion: unknown option\(s\) \['step'\]"):
        check_options("deletion", {"step": 10})
    check_options("robustness", {"metric": "robustness", "attack": ["random", "topk"]})
    with pytest.raises(ConfigError, match=r"eval.robustness.attack='pgd'"):
        check_options("robustness", {"attack": "pgd"})
    with pytest.raises(ConfigError, match=r"eval.robustness.attack=\['fgsm', 'pgd'\]"):
        check_options("robustness", {"attack": ["fgsm", "pgd"]})
    with pytest.raises(ConfigError, match=r"eval.stability.budgets"):
        check_options("stability", {"budgets": "1,2"})
    with pytest.raises(ConfigError, match=r"eval.insertion.blur_sigma"):
        check_options("insertion", {"blur_sigma": float("nan")})
    with pytest.raises(ConfigError, match="eval='nope'"):
        check_options("nope", {})


def test_registry_and_configs_list_every_option_with_its_default():
    assert {"mufidelity", "deletion", "insertion", "robustness", "stability"} <= set(METRICS)
    assert NEEDS_EXPLAINER == {"robustness", "stability", "noise_floor", "completeness",
                               "sanity"}
    common = RUNNER_ARGUMENTS
    for name in ("deletion", "insertion", "robustness", "stability", "road", "completeness",
                 "sanity"):
        path = CONF / f"{name}.yaml"
        assert path.read_text().startswith(f"# @package eval.{name}\n")
        config = yaml.safe_load(path.read_text())
        assert config.pop("metric") == name  # the runner's selector
        parameters = inspect.signature(METRICS[name]).parameters
        assert set(config) == set(parameters) - common, name
        check_options(name, config)
        for option, value in config.items():
            default = parameters[option].default
            if isinstance(default, tuple):
                default = list(default)
            assert value == default or (isinstance(value, float) and math.isclose(value, default))
    assert di_module.BLUR_SIGMA == 5.0 and rob_module.EPS == 8 / 255


def test_protocol_gives_python_calls_the_command_lines_metric_options():
    """``uni.metrics.protocol()`` is what the default composed config gives each metric,
    and ``protocol("rise")`` is the metric functions' own defaults."""
    import inspect

    from tests.test_selection import composed
    from uni.metrics import REGISTRY, protocol

    paper, rise = protocol(), protocol("rise")
    cfg = composed("eval=[mufidelity,deletion,insertion]")
    for metric, options in paper.items():
        assert {k: cfg["eval"][metric][k] for k in options} == options, metric
        defaults = inspect.signature(REGISTRY[metric].fn).parameters
        assert {k: defaults[k].default for k in rise[metric]} == rise[metric], metric
    with pytest.raises(ConfigError, match="not one of"):
        protocol("xplique")

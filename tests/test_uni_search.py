"""UNI's baseline search and unlearning variants (issue: converged, stable, truly unlearned)."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
import torch.nn.functional as F

from uni.errors import RunError
from uni.methods import Explainer, explain
from uni.metrics import noise_floor

unlearning = importlib.import_module("uni.methods.unlearning")


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def unlearned_target(resnet, images):
    target = torch.tensor([1, 2, 3])
    logits, _ = unlearning.unlearned_logits(resnet, images, target, 0.5)
    return target, F.log_softmax(logits, -1)


def _kl(model, points, log_q):
    with torch.no_grad():
        return unlearning.kl_divergence(log_q, F.log_softmax(model(points), -1), "forward")


def test_best_iterate_is_never_worse_than_the_last(resnet, images, unlearned_target):
    """The last sign-PGD iterate, recomputed here step by step, has a KL at least as large
    as the returned baseline's (the search keeps the best of all iterates)."""
    _, log_q = unlearned_target
    eps, steps = 8 / 255, 6
    best, diagnostics = unlearning.match_activations(resnet, images, log_q, eps, "linf", steps)
    last = images.clone()
    for size in unlearning.step_sizes(steps, eps, "sign", "constant", None):
        last.requires_grad_(True)
        kl = unlearning.kl_divergence(log_q, F.log_softmax(resnet(last), -1), "forward")
        (g,) = torch.autograd.grad(kl.sum(), last)
        last = unlearning.project(last.detach() - size * g.sign(), images, eps, "linf")
    assert (_kl(resnet, best, log_q) <= _kl(resnet, last, log_q) + 1e-6).all()
    assert (diagnostics["kl"] <= diagnostics["kl_start"] + 1e-6).all()
    assert torch.allclose(diagnostics["kl"], _kl(resnet, best, log_q), atol=1e-5)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
@pytest.mark.parametrize("update,schedule", [("sign", "constant"), ("sign", "cosine"),
                                             ("adam", "cosine")])
def test_search_stays_in_the_ball_and_the_pixel_range(
        resnet, images, unlearned_target, norm, eps, update, schedule):
    _, log_q = unlearned_target
    x = images.clone()
    x[0, :, :4] = 1.0  # pixels at the edge of the box
    baseline, diagnostics = unlearning.match_activations(
        resnet, x, log_q, eps, norm, 5, pgd_update=update, pgd_schedule=schedule,
        random_start=True, image_ids=["a", "b", "c"])
    delta = (baseline - x).flatten(1)
    distance = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (distance <= eps + 1e-6).all()
    assert baseline.min() >= 0 and baseline.max() <= 1
    assert ((diagnostics["best_iteration"] >= 0) & (diagnostics["best_iteration"] <= 5)).all()


def test_kl_tolerance_stops_the_search(resnet, images, unlearned_target):
    _, log_q = unlearned_target
    _, full = unlearning.match_activations(resnet, images, log_q, 8 / 255, "linf", 6)
    _, stopped = unlearning.match_activations(resnet, images, log_q, 8 / 255, "linf", 6,
                                              kl_tolerance=1e9)
    assert (full["search_iterations"] == 6).all()
    assert (stopped["search_iterations"] == 1).all()  # stops once its best KL is below


def test_the_normalised_step_has_length_eta():
    g = {"w": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0])}
    step = unlearning._ascent(g, 0.2, "normalised")
    length = torch.sqrt(sum((v ** 2).sum() for v in step.values()))
    assert length == pytest.approx(0.2)
    assert torch.equal(unlearning._ascent(g, 0.2, "fixed")["w"], torch.tensor([0.6, 0.0]))


@pytest.mark.parametrize("options", [
    {"unlearn_step": "normalised", "unlearn_steps": 2},
    {"unlearn_step": "fixed", "unlearn_steps": 4, "unlearn_until": 0.3},
])
def test_loop_equals_vmap_unlearning_in_float64(resnet, images, options):
    model = copy.deepcopy(resnet).double()
    x = images.double()
    target = torch.tensor([1, 2, 3])
    loop, loop_steps = unlearning.unlearned_logits(model, x, target, 0.5, mode="loop", **options)
    vmap, vmap_steps = unlearning.unlearned_logits(model, x, target, 0.5, mode="vmap",
                                                   chunk_size=2, **options)
    assert torch.equal(loop_steps, vmap_steps)
    assert (loop - vmap).abs().max() < 1e-10


def test_unlearning_until_a_threshold(resnet, images):
    """Each image stops at the first step whose p_c is below the threshold (one step
    fewer had not crossed it), or after unlearn_steps."""
    target = torch.tensor([1, 2, 3])
    with torch.no_grad():
        start = resnet(images).softmax(-1)[torch.arange(3), target]
    until = 0.8 * float(start.min())  # every image starts above it
    logits, taken = unlearning.unlearned_logits(resnet, images, target, 0.2,
                                                unlearn_steps=10, unlearn_until=until)
    p_c = logits.softmax(-1)[torch.arange(3), target]
    assert ((p_c < until) | (taken == 10)).all() and (taken < 10).any()
    for i in range(3):
        if taken[i] > 1:
            fewer, _ = unlearning.unlearned_logits(resnet, images[i:i + 1], target[i:i + 1],
                                                   0.2, unlearn_steps=int(taken[i]) - 1)
            assert fewer.softmax(-1)[0, target[i]] >= until, i


def test_a_diverging_unlearning_step_stops_in_one_line(resnet, images):
    """Fixed ascent steps grow with the loss: ten of eta = 0.2 overflow this network's
    logits. The search would then stay at x, a zero map the metrics would score as if it
    were one: the run stops with one line naming the image and the settings instead."""
    with pytest.raises(RunError, match="diverged on image a: non-finite logits after 10 "
                                       "fixed step"):
        unlearning.uni_baseline(resnet, images, torch.tensor([1, 2, 3]), image_ids=["a", "b", "c"],
                                eta=0.2, unlearn_steps=10, unlearn_step="fixed", pgd_steps=1)


def test_uni_records_its_search_diagnostics(resnet, images):
    result = explain(resnet, images, None, "uni", steps=2, pgd_steps=3, eps=8 / 255)
    for key in ("kl", "kl_start", "best_iteration", "search_iterations", "boundary_fraction",
                "p_c_unlearned", "p_c_baseline", "unlearn_steps_taken"):
        assert result.diagnostics[key].shape == (3,), key
    assert ((result.diagnostics["boundary_fraction"] >= 0)
            & (result.diagnostics["boundary_fraction"] <= 1)).all()


def test_noise_floor_of_a_deterministic_method_is_exactly_one(resnet, images):
    result = explain(resnet, images, None, "ig_black", steps=4)
    target = resnet(images).argmax(-1)
    floor = noise_floor(resnet, images, result.attributions, target,
                        explainer=Explainer(resnet, "ig_black", {"steps": 4}), k=50)
    assert (floor["noise_floor_spearman"] == 1).all()
    assert (floor["noise_floor_intersection"] == 1).all()


@pytest.mark.parametrize("method,options", [
    ("ig_uniform", {"steps": 4}),
    ("uni", {"steps": 2, "pgd_steps": 2, "eps": 8 / 255}),
])
def test_noise_floor_of_a_random_method_restarts_it(resnet, images, method, options):
    """A restart draws new noise (IG-uniform) or starts UNI's search at a random point:
    the two explanations differ, and the floor is below 1."""
    result = explain(resnet, images, None, method, **options)
    target = resnet(images).argmax(-1)
    again = explain(resnet, images, target, method, restart=1, **options)
    assert not torch.equal(again.attributions, result.attributions)
    floor = noise_floor(resnet, images, result.attributions, target,
                        explainer=Explainer(resnet, method, options), k=50)
    assert (floor["noise_floor_spearman"] < 1).all()


def test_default_uni_unlearns_the_most_confident_development_images(lite0):
    """The 8 development images the model is most sure of keep p_c(x') < 0.5 under the
    default UNI: its baseline is not a confident copy of the image (with the previous
    fixed step, 12 of the first 100 images kept p_c(x') > 0.5, all with p_c(x) > 0.97)."""
    from tests.conftest import SHARED_DEV
    from uni.analysis.ablation import most_confident
    from uni.methods.unlearning import uni_baseline

    if not SHARED_DEV.is_dir():
        pytest.fail(f"the development split is missing: {SHARED_DEV}")
    x, target, ids = most_confident(lite0, SHARED_DEV, count=8)
    _, diagnostics = uni_baseline(lite0, x, target, image_ids=ids)
    assert (diagnostics["p_c_input"] > 0.98).all()
    assert (diagnostics["p_c_baseline"] < 0.5).all(), diagnostics["p_c_baseline"]

"""Trivial maps (uni.methods.trivial) and the completeness metric (uni.metrics.completeness)."""

from __future__ import annotations

import math

import torch

from uni.methods import METHODS, TRIVIAL_METHODS, Explainer, explain
from uni.metrics import completeness


def test_trivial_maps_are_the_patterns_they_name(resnet, small_images):
    x, target, ids = small_images, torch.tensor([0, 1, 2]), ["a", "b", "c"]

    def pixel(name, image_ids=ids):
        result = explain(resnet, x, target, name, image_ids=image_ids)
        assert result.baselines is None and result.attributions.shape == x.shape
        return result.attributions.sum(1)

    assert torch.equal(pixel("trivial_constant"), torch.ones(3, 32, 32))
    torch.testing.assert_close(pixel("trivial_intensity"), x.mean(1))
    noise = pixel("trivial_noise")
    assert torch.equal(noise[1:2], pixel("trivial_noise", ["b", "a", "c"])[0:1])  # keyed on id
    assert not torch.equal(noise[0], noise[1])
    centre = pixel("trivial_centre")[0]
    assert centre.argmax() in (15 * 32 + 15, 15 * 32 + 16, 16 * 32 + 15, 16 * 32 + 16)
    torch.testing.assert_close(centre, centre.flip(0).flip(1))
    # Sobel: a vertical step edge lights up the two columns beside it only
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0
    edges = explain(resnet, step, torch.tensor([0]), "trivial_edges", image_ids=["s"])
    columns = edges.attributions.sum(1)[0].sum(0)
    assert torch.equal(columns.nonzero().flatten(), torch.tensor([3, 4]))
    for name in TRIVIAL_METHODS:
        assert not METHODS[name].is_straight_line()
    assert METHODS["trivial_noise"].is_random() and not METHODS["trivial_edges"].is_random()


def test_completeness_of_ig_at_256_steps_and_na_without_baseline(resnet, small_images):
    """IG-black at 256 trapezoid steps (the random ResNet's ReLU kinks leave the right rule
    at 0.2-3 %: docs/metrics.md)."""
    x, target = small_images, torch.tensor([0, 1, 2])
    ig = explain(resnet, x, target, "ig_black", steps=256, rule="trapezoid",
                 internal_batch_size=256, image_ids=list("abc"))
    gap = completeness(resnet, x, ig.attributions, target, baselines=ig.baselines)
    assert (gap < 1e-2).all()
    torch.testing.assert_close(gap, ig.diagnostics["completeness_gap"], atol=1e-4, rtol=1e-3)
    coarse = explain(resnet, x, target, "ig_black", steps=4, rule="trapezoid",
                     image_ids=list("abc"))
    assert (completeness(resnet, x, coarse.attributions, target, baselines=coarse.baselines)
            > gap).all()
    edges = explain(resnet, x, target, "trivial_edges", image_ids=list("abc"))
    assert all(math.isnan(v) for v in completeness(resnet, x, edges.attributions, target,
                                                   baselines=edges.baselines).tolist())


def test_completeness_averages_over_the_draws_of_a_noise_baseline(resnet, small_images):
    """IG from uniform noise with 3 draws: sum A approaches F_c(x) minus the mean over the
    3 baselines, not minus the first draw's."""
    x, target, ids = small_images, torch.tensor([0, 1, 2]), list("abc")
    options = {"samples": 3, "steps": 64, "rule": "middle", "internal_batch_size": 192}
    result = explain(resnet, x, target, "ig_uniform", image_ids=ids, **options)
    explainer = Explainer(resnet, "ig_uniform", options)
    gap = completeness(resnet, x, result.attributions, target, baselines=result.baselines,
                       explainer=explainer, image_ids=ids)
    first_only = completeness(resnet, x, result.attributions, target,
                              baselines=result.baselines)
    assert (gap < 0.1).all() and (first_only > 3 * gap).all()

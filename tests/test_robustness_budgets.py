"""Robustness like with like (the experimental-design issue): a budget sweep whose
perturbations have the same size for every method of an image, maps compared by
magnitude, and a noise floor of two independent restarts."""

import math

import pytest
import torch

from tests.test_metrics import TinyCNN
from uni.methods import Explainer, explain
from uni.metrics import direction, metric_spec
from uni.metrics.noise_floor import noise_floor
from uni.metrics.robustness import compare_maps, metric_names, robustness

IDS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def setup():
    model = TinyCNN()
    x = 0.25 + 0.5 * torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        target = model(x).argmax(-1)
    return model, x, target


def _run(setup, method, **options):
    model, x, target = setup
    explainer = Explainer(model, method, {"steps": 4})
    a = explain(model, x, target, method, image_ids=IDS, steps=4).attributions
    return robustness(model, x, a, target, explainer=explainer, image_ids=IDS, k=20,
                      steps=2, batch_size=8, **options)


def test_a_sweep_records_every_budget_with_the_same_delta_for_every_method(setup):
    budgets = [1 / 255, 4 / 255]
    names = metric_names(["random", "fgsm", "topk"], budgets)
    assert "robustness_random_linf4_spearman" in names and "robustness_topk_linf1_l2" in names
    assert all(metric_spec(n).name == "robustness" for n in names)
    assert direction("robustness_fgsm_linf4_intersection") == "higher"
    assert direction("robustness_fgsm_linf4_l2") is None  # a side value: the achieved size
    runs = {m: _run(setup, m, attack=["random", "fgsm", "topk"], eps=budgets)
            for m in ("ig_black", "ig_uniform")}
    assert set(runs["ig_black"]) == set(names)
    for budget in ("linf1", "linf4"):
        for attack in ("random", "fgsm", "topk"):
            sizes = [runs[m][f"robustness_{attack}_{budget}_linf"] for m in runs]
            kept = [runs[m][f"robustness_{attack}_{budget}_skipped"] == 0 for m in runs]
            both = kept[0] & kept[1]
            assert both.any()
            # the achieved L-inf size equals the budget for every method of an image
            expected = int(budget[4:]) / 255
            assert torch.allclose(sizes[0][both], torch.full_like(sizes[0][both], expected))
            assert torch.allclose(sizes[0][both], sizes[1][both])
    # the L2 budget: the random sign pattern on the sphere of radius eps
    l2 = _run(setup, "ig_black", attack="random", eps=[0.5], norm="l2")
    achieved = l2["robustness_random_l2_0p5_l2"]
    assert torch.allclose(achieved, torch.full_like(achieved, 0.5), atol=1e-4)


def test_default_budget_keeps_the_plain_record_names(setup):
    names = metric_names("random")
    assert names == [f"robustness_random_{k}" for k in
                     ("spearman", "intersection", "linf", "l2", "skipped")]


def test_maps_are_compared_by_magnitude_unless_signed():
    a = torch.zeros(1, 3, 2, 2)
    a[0, :, 0, 0], a[0, :, 1, 1] = 1.0, -2.0  # the largest magnitude is negative
    b = a.clone()
    b[0, :, 1, 1] = 2.0  # the same magnitudes, the sign flipped
    rho, top = compare_maps(a, b, k=1)
    assert float(rho) == pytest.approx(1.0) and float(top) == 1.0
    rho, top = compare_maps(a, b, k=1, compare="signed")
    assert float(rho) < 1.0 and float(top) == 0.0


def test_noise_floor_compares_two_independent_restarts(setup):
    model, x, target = setup
    explainer = Explainer(model, "uni", {"steps": 4, "pgd_steps": 3, "eps": 0.05,
                                          "norm": "linf"})
    a = explain(model, x, target, "uni", image_ids=IDS, steps=4, pgd_steps=3, eps=0.05,
                norm="linf").attributions
    restarts = noise_floor(model, x, a, target, explainer=explainer, image_ids=IDS, k=20)
    explained = noise_floor(model, x, a, target, explainer=explainer, image_ids=IDS, k=20,
                            pair="explained")
    again = explainer(x, target, image_ids=IDS, restart=1).attributions
    second = explainer(x, target, image_ids=IDS, restart=2).attributions
    expected, _ = compare_maps(again, second, 20)
    assert torch.allclose(restarts["noise_floor_spearman"], expected.float())
    assert not torch.allclose(restarts["noise_floor_spearman"],
                              explained["noise_floor_spearman"])
    black = Explainer(model, "ig_black", {"steps": 4})
    floor = noise_floor(model, x, a, target, explainer=black, image_ids=IDS, k=20)
    assert all(math.isclose(float(v), 1.0, abs_tol=1e-6) for v in floor["noise_floor_spearman"])


def test_a_cell_without_finite_values_reads_n_a():
    import pandas as pd

    from uni.analysis.tables import pivot, summarise

    records = pd.DataFrame({"method": ["deeplift", "deeplift", "uni", "uni"],
                            "metric": ["robustness_topk_spearman"] * 4,
                            "value": [float("nan"), float("nan"), 0.5, 0.7]})
    table = pivot(summarise(records))
    assert table.loc["deeplift"].iloc[0] == "n/a (0 of 2)"
    assert table.loc["uni"].iloc[0].startswith("**0.600")

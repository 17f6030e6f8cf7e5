"""ROAD (uni.metrics.road) against grad-cam's ROADMostRelevantFirst / ROADLeastRelevantFirst,
and its imputation on cases with a known answer."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from uni.data import build_dataset
from uni.errors import ConfigError
from uni.methods import explain
from uni.metrics import check_options, road
from uni.metrics._common import pixel_map
from uni.metrics.deletion_insertion import pixel_ranks
from uni.metrics.road import (
    NEIGHBOUR_WEIGHTS,
    PERCENTAGES,
    impute,
    noise_of,
    removed_count,
    removed_mask,
    road_curves,
)


def test_imputation_reproduces_linear_images_and_keeps_kept_pixels():
    """A plane ``a + b*row + c*col`` satisfies the 8-neighbour mean equation at every
    interior pixel, so imputing interior holes gives it back; kept pixels never change."""
    rows, cols = torch.meshgrid(torch.arange(12.0), torch.arange(10.0), indexing="ij")
    image = torch.stack([0.1 + 0.02 * rows + 0.03 * cols, 0.5 - 0.01 * rows,
                         0.2 + 0.04 * cols])
    removed = torch.zeros(12, 10, dtype=torch.bool)
    removed[3:8, 2:7] = True
    filled = impute(image, removed)
    assert torch.allclose(filled, image, atol=1e-6)
    noisy = image + 0.1 * torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
    filled = impute(noisy, removed)
    assert torch.equal(filled[:, ~removed], noisy[:, ~removed])
    assert not torch.allclose(filled[:, removed], noisy[:, removed])


def test_imputed_pixels_are_the_weighted_mean_of_their_neighbours():
    """The definition, border pixels included (neighbours outside the image drop out):
    every removed pixel equals the weighted mean of its in-image neighbours, removed
    neighbours at their imputed values, whatever the solver."""
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(3, 9, 11, generator=generator, dtype=torch.float64)
    removed = torch.rand(9, 11, generator=generator) < 0.6
    filled = impute(image, removed)
    for r, c in removed.nonzero().tolist():
        total, weights = torch.zeros(3, dtype=torch.float64), 0.0
        for (dr, dc), weight in NEIGHBOUR_WEIGHTS:
            if 0 <= r + dr < 9 and 0 <= c + dc < 11:
                total += weight * filled[:, r + dr, c + dc]
                weights += weight
        torch.testing.assert_close(filled[:, r, c], total / weights, atol=1e-12, rtol=0)


def test_removed_count_matches_numpy_percentile_threshold():
    values = np.random.default_rng(0).permutation(50176).astype(np.float64)
    for p in PERCENTAGES:
        kept = int((values < np.percentile(values, 100 - p)).sum())
        assert removed_count(values.size, p) == values.size - kept


def test_road_equals_grad_cam(lite0, monkeypatch):
    """MoRF / LeRF scores equal grad-cam's at the paper's percentages, with the same noisy
    linear imputation: grad-cam's noise draw (``torch.randn_like``) is replaced by ours at
    the pixels it removes. One embedded photo at 112 px keeps the 18 sparse solves of each
    implementation cheap."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    dataset = build_dataset("embedded", dict(lite0.data_config, input_size=(3, 112, 112)),
                            limit=1)
    x, ids = dataset[0].image[None], [dataset[0].image_id]
    with torch.no_grad():
        target = lite0(x).argmax(-1)
        before = torch.softmax(lite0(x), -1)[0, target[0]]
    a = explain(lite0, x, target, "ig_black", image_ids=ids, steps=4).attributions
    ours = road_curves(lite0, x, a, target, image_ids=ids, seed=3, batch_size=9)
    cams = pixel_map(a).double().numpy()  # float64: grad-cam's ``1 - cam`` keeps every order
    ranks = pixel_ranks(a)[0]
    draws = []
    monkeypatch.setattr(torch, "randn_like", lambda like, *args, **kwargs: draws.pop(0))
    classes = {"morf": ROADMostRelevantFirst, "lerf": ROADLeastRelevantFirst}
    for order, metric_class in classes.items():
        for k, p in enumerate(PERCENTAGES):
            removed = removed_mask(ranks, order, p)
            draws.append(noise_of(3, ids[0], order, p, (3, removed.numel()))[:, removed])
            # grad-cam's percentile is the share of pixels kept; it returns F_c(after) - F_c(x)
            theirs = metric_class(100 - p)(x, cams, [ClassifierOutputSoftmaxTarget(int(target))],
                                           lite0)
            assert not draws  # grad-cam drew exactly once, the shape we gave
            assert abs(float(theirs[0]) + float(before) - float(ours[order][0, k])) < 1e-3


def test_road_values_and_options(resnet, small_images):
    a = torch.randn(small_images.shape, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2])
    values = road(resnet, small_images, a, target, percentages=[20, 60], image_ids=list("abc"))
    assert set(values) == {"road_morf", "road_lerf", "road_combined", "road_consistency"}
    torch.testing.assert_close(values["road_combined"],
                               (values["road_lerf"] - values["road_morf"]) / 2)
    assert ((values["road_consistency"] >= 0) & (values["road_consistency"] <= 1)).all()
    again = road(resnet, small_images, a, target, percentages=[20, 60], image_ids=list("abc"))
    torch.testing.assert_close(again, values)  # keyed noise: the same draws
    with pytest.raises(ConfigError, match="percentages"):
        check_options("road", {"percentages": [0, 50]})
    with pytest.raises(ConfigError, match="noise"):
        check_options("road", {"noise": -1})


def test_imputation_threads_change_no_value(resnet, small_images, monkeypatch):
    """The imputation runs on a thread pool (SuperLU releases the GIL) sized from the
    device; the perturbed images, hence the curves, are the same on one thread or four."""
    road_module = importlib.import_module("uni.metrics.road")  # the package exports road()

    a = torch.randn(small_images.shape, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1, 2])
    curves, pool_class = {}, road_module.ThreadPoolExecutor
    for threads in (1, 4):
        monkeypatch.setattr(road_module, "imputation_threads", lambda device, t=threads: t)
        pools = []
        monkeypatch.setattr(road_module, "ThreadPoolExecutor",
                            lambda n, pools=pools: pools.append(n) or pool_class(n))
        curves[threads] = road_curves(resnet, small_images, a, target, percentages=[30, 70],
                                      image_ids=list("abc"), batch_size=4)
        assert pools == ([] if threads == 1 else [4])
    for order in ("morf", "lerf"):
        assert torch.equal(curves[1][order], curves[4][order])

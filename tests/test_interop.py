"""UNI in peers' pipelines: ``uni.baselines`` for Captum's IntegratedGradients and
``uni.quantus.explain`` as a Quantus ``explain_func`` (docs/interop.md, "UNI in Captum and
Quantus pipelines", whose code block runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

import uni
from tests.conftest import Linear
from uni.errors import ConfigError

PAGE = Path(__file__).resolve().parents[1] / "docs" / "interop.md"
SECTION = "## UNI in Captum and Quantus pipelines"


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().sum() / b.abs().sum())


def test_docs_block_captum_from_uni_baselines_equals_uni_and_quantus_scores_it():
    """On two embedded photos with EfficientNet-Lite0: Captum's IG from ``uni.baselines``
    (right rule, same steps) equals ``uni.attribute(method="uni")``, and Quantus'
    FaithfulnessCorrelation scores UNI through the adapter."""
    section = PAGE.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(code, f"{PAGE}:{SECTION}", "exec"), namespace)
    assert namespace["x"].shape == (2, 3, 224, 224)
    assert relative_l1(namespace["captum_ig"], namespace["ours"]) < 1e-4
    assert namespace["ours"].abs().sum() > 0
    scores = np.asarray(namespace["scores"])
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1)


@pytest.fixture
def linear_batch():
    model = Linear()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return model, x, torch.tensor([0, 1])


def test_several_draws_come_draw_major_and_captum_averages_to_uni(linear_batch):
    model, x, target = linear_batch
    options = {"samples": 3, "image_ids": ["a", "b"], "seed": 5}
    draws = uni.baselines(model, x, target, method="ig_gaussian", **options)
    assert draws.shape == (3, *x.shape)
    assert not torch.equal(draws[0], draws[1])
    captum = IntegratedGradients(lambda z: model(z).softmax(-1))
    mean = torch.stack([captum.attribute(x, baselines=b, target=target, n_steps=4,
                                         method="riemann_right") for b in draws]).mean(0)
    ours = uni.attribute(model, x, target, "ig_gaussian", steps=4, **options)
    assert relative_l1(mean, ours) < 1e-5


def test_static_baseline_is_shaped_like_the_batch(linear_batch):
    model, x, target = linear_batch
    assert torch.equal(uni.baselines(model, x, target, method="ig_black", steps=8),
                       torch.zeros_like(x))


@pytest.mark.parametrize("method, options, expected", [
    ("deeplift", {}, "does not integrate along straight lines"),
    ("expected_gradients", {"points": "random"}, "does not integrate along straight lines"),
    ("uni", {"epsilon": 0.1}, "unknown option(s) ['epsilon']"),
    ("ig_nope", {}, "method='ig_nope' is not one of"),
])
def test_what_captum_cannot_reproduce_is_one_line_error(linear_batch, method, options, expected):
    model, x, target = linear_batch
    with pytest.raises(ConfigError) as error:
        uni.baselines(model, x, target, method=method, **options)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_quantus_adapter_returns_numpy_attributions_and_reduces_axes(linear_batch):
    model, x, target = linear_batch
    full = uni.quantus.explain(model, x.numpy(), target.numpy(), method="ig_black", steps=4)
    assert isinstance(full, np.ndarray) and full.dtype == np.float32 and full.shape == x.shape
    ours = uni.attribute(model, x, target, "ig_black", steps=4)
    np.testing.assert_allclose(full, ours.numpy(), rtol=1e-6)
    summed = uni.quantus.explain(model, x.numpy(), target.numpy(), method="ig_black", steps=4,
                                 reduce_axes=(1,), device="cpu")
    assert summed.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(summed, full.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="channel-first batch"):
        uni.quantus.explain(model, x[0].numpy(), target.numpy())

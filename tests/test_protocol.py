"""The metrics' protocol choices (issue 15): named fills, MuFidelity's correlation, masks and
NaN handling, deletion / insertion canvases, and the `protocol` config group, checked
against the definitions of Xplique (which the UNI paper cites) written out independently."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.stats import spearmanr
from torch import nn

from tests.conftest import Linear
from uni.engine.identity import record_keys
from uni.errors import ConfigError
from uni.methods.baselines import blur
from uni.metrics import (
    RUNNER_ARGUMENTS,
    check_options,
    deletion,
    deletion_curve,
    insertion,
    insertion_curve,
    mufidelity,
)
from uni.metrics.fills import FILLS, fill_image
from uni.metrics.mufidelity import cell_index, draw_subsets
from uni.models import PixelSpaceModel
from uni.run import check_group_overrides

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def small_cnn(seed=0, classes=5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes),
    ).eval()


def pixel_weighted(size: int, seed=0, classes=5) -> nn.Module:
    """A network whose scores depend on where pixels change (a linear layer over per-pixel
    features), so the deletion / insertion order matters."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * size * size, classes)).eval()
    with torch.no_grad():
        net[-1].weight.mul_(4.0)
    return net


def pixel_model(net: nn.Module, size: int) -> PixelSpaceModel:
    """``net`` behind the harness's wrapper: normalises [0, 1] images with MEAN / STD."""
    return PixelSpaceModel(net, "toy", {"input_size": (3, size, size), "mean": MEAN, "std": STD})


def _ids(n, prefix="img"):
    return [f"{prefix}{i}" for i in range(n)]


# --- fills and canvases -----------------------------------------------------------------


def test_every_fill_is_the_documented_image():
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    model = pixel_model(small_cnn(), 16)
    assert set(FILLS) == {"black", "grey", "model_zero", "blur", "mean"}
    expected = {
        "black": torch.zeros_like(x),
        "grey": torch.full_like(x, 0.5),
        "model_zero": torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(x),
        "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x),
        "blur": blur(x, sigma=7.0),
        0.25: torch.full_like(x, 0.25),
        1: torch.ones_like(x),
    }
    for fill, image in expected.items():
        got = fill_image(model, x, fill, blur_sigma=7.0)
        assert got.shape == x.shape and torch.allclose(got, image, atol=1e-6), fill
    # model_zero is 0 in the model's normalised input space
    normalised = (fill_image(model, x, "model_zero") - model.mean) / model.std
    assert normalised.abs().max() < 1e-6
    # a model without a `mean` buffer is taken to normalise with mean 0.5
    assert torch.equal(fill_image(Linear(), x, "model_zero"), torch.full_like(x, 0.5))


@pytest.mark.parametrize("fill, message", [
    ("blak", "fill='blak' is not one of"),
    (float("nan"), "fill=nan must be a finite number"),
    (float("inf"), "fill=inf must be a finite number"),
    (True, "fill=True is not one of"),
    (None, "fill=None is not one of"),
])
def test_an_unknown_or_non_finite_fill_is_a_one_line_config_error(fill, message):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match=message) as err:
        fill_image(Linear((3, 8, 8)), x, fill)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="blur_sigma=-1"):
        fill_image(Linear((3, 8, 8)), x, "blur", blur_sigma=-1)


def test_options_are_checked_before_any_work_with_the_option_name():
    check_options("mufidelity", {"masks": "bernoulli", "correlation": "spearman",
                                 "fill": "model_zero", "nan_to_zero": True})
    check_options("deletion", {"fill": 0.3, "steps": 10})
    check_options("insertion", {"canvas": "mean", "steps": 10})
    for name, options, message in [
        ("mufidelity", {"masks": "poisson"}, "eval.mufidelity.masks='poisson'"),
        ("mufidelity", {"correlation": "kendall"}, "eval.mufidelity.correlation='kendall'"),
        ("mufidelity", {"nan_to_zero": "yes"}, "eval.mufidelity.nan_to_zero='yes'"),
        ("mufidelity", {"fill": "white"}, "eval.mufidelity.fill='white'"),
        ("mufidelity", {"subsets": 1}, "eval.mufidelity.subsets=1"),
        ("mufidelity", {"baseline_value": 0.0}, r"unknown option\(s\) \['baseline_value'\]"),
        ("deletion", {"fill": float("inf")}, "eval.deletion.fill=inf"),
        ("deletion", {"canvas": "blur"}, r"unknown option\(s\) \['canvas'\]"),
        ("insertion", {"canvas": "blurred"}, "eval.insertion.canvas='blurred'"),
        ("insertion", {"fill": "black"}, r"unknown option\(s\) \['fill'\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_options(name, options)


def _options(fn) -> set[str]:
    return set(inspect.signature(fn).parameters) - RUNNER_ARGUMENTS


def test_curves_take_the_same_options_as_their_metrics():
    """The runner passes a metric's options to its curve function for the figures."""
    assert _options(deletion_curve) == _options(deletion) == {"steps", "fill", "blur_sigma"}
    assert _options(insertion_curve) == _options(insertion) == {"steps", "canvas", "blur_sigma"}


def test_mufidelity_config_lists_every_option_with_its_default():
    config = yaml.safe_load((ROOT / "conf" / "eval" / "mufidelity.yaml").read_text())
    assert config.pop("metric") == "mufidelity"
    parameters = inspect.signature(mufidelity).parameters
    assert set(config) == _options(mufidelity)
    for option, value in config.items():
        assert value == parameters[option].default, option
    check_options("mufidelity", config)


# --- MuFidelity -------------------------------------------------------------------------


@pytest.mark.parametrize("masks", ["exact", "bernoulli"])
def test_spearman_mufidelity_is_one_for_the_exact_attribution_of_a_linear_model(masks):
    """``F(x) - F(x_[S=f]) = sum_S w (x - f)`` exactly: the attribution ``w (x - f)`` has
    rank correlation 1 with the score drop, for a constant fill and for model_zero."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    target = torch.zeros(3, dtype=torch.long)
    linear = Linear()
    common = dict(output="logit", grid=4, subsets=40, masks=masks, correlation="spearman",
                  nan_to_zero=True, image_ids=_ids(3))
    w = linear.w.detach()
    values = mufidelity(linear, x, w * x, target, fill=0.0, **common)
    assert torch.allclose(values, torch.ones(3), atol=1e-6)
    # the same through the pixel-space wrapper: model_zero is its mean colour
    model = pixel_model(linear, 16)
    exact = (w / model.std) * (x - model.mean)
    values = mufidelity(model, x, exact, target, fill="model_zero", **common)
    assert torch.allclose(values, torch.ones(3), atol=1e-6)


def test_bernoulli_masks_have_the_right_mean_fraction_and_are_keyed():
    ids = _ids(3)
    masks = draw_subsets(ids, 0, 9, 2000, 0.2, "bernoulli")  # (3, 2000, 81)
    assert abs(masks.float().mean().item() - 0.2) < 0.005
    sizes = masks.sum(-1)
    assert sizes.float().std() > 2  # a binomial number of cells, not always 16
    assert (draw_subsets(ids, 0, 9, 50, 0.2, "exact").sum(-1) == 16).all()
    # keyed on (seed, image_id): the same alone or anywhere in a batch
    alone = draw_subsets(["img1"], 0, 9, 50, 0.2, "bernoulli")
    assert torch.equal(alone[0], draw_subsets(["a", "img1", "b"], 0, 9, 50, 0.2, "bernoulli")[1])
    assert not torch.equal(alone, draw_subsets(["img1"], 1, 9, 50, 0.2, "bernoulli"))


def test_paper_mufidelity_of_an_image_is_the_same_alone_or_in_a_batch():
    model = pixel_model(small_cnn(), 16)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([0, 1, 2])
    paper = dict(subsets=30, masks="bernoulli", fill="model_zero", correlation="spearman",
                 nan_to_zero=True, seed=5)
    batch = mufidelity(model, x, a, target, image_ids=_ids(3), batch_size=7, **paper)
    alone = mufidelity(model, x[1:2], a[1:2], target[1:2], image_ids=["img1"], **paper)
    assert batch[1].item() == pytest.approx(alone.item(), abs=1e-6)


def test_nan_to_zero_maps_a_constant_score_to_zero():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2)

    x = torch.rand(2, 3, 8, 8)
    a = torch.randn(x.shape)
    target = torch.zeros(2, dtype=torch.long)
    common = dict(grid=3, subsets=10, correlation="spearman", image_ids=_ids(2))
    assert mufidelity(Constant(), x, a, target, **common).isnan().all()
    assert (mufidelity(Constant(), x, a, target, nan_to_zero=True, **common) == 0).all()


def test_paper_mufidelity_equals_xplique_definition_on_the_same_masks():
    """Xplique's MuFidelity written out (numpy, model input space): cells set to 0.0 after
    the model's normalisation, Spearman (scipy) between the attribution summed over the
    removed pixels and the score drop, NaN -> 0; on our keyed Bernoulli masks."""
    net = pixel_weighted(32, seed=1)
    model = pixel_model(net, 32)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    target = torch.tensor([1, 3])
    ids, grid, subsets = _ids(2), 9, 200
    ours = mufidelity(model, x, a, target, subsets=subsets, masks="bernoulli",
                      fill="model_zero", correlation="spearman", nan_to_zero=True,
                      image_ids=ids)

    z = ((x - model.mean) / model.std).numpy()  # what Xplique's model is given
    removed_cells = draw_subsets(ids, 0, grid, subsets, 0.2, "bernoulli").numpy()
    cells = cell_index(32, 32, grid).numpy()
    score = lambda inputs: torch.softmax(net(torch.from_numpy(inputs)), -1).detach().numpy()
    for n in range(2):
        removed = removed_cells[n][:, cells][:, None]  # (subsets, 1, H, W)
        perturbed = np.where(removed, np.float32(0.0), z[n][None])
        drop = score(z[n][None])[0, target[n]] - score(perturbed)[:, target[n]]
        attribution = (a[n].numpy()[None] * removed).sum(axis=(1, 2, 3))
        expected = spearmanr(drop, attribution)[0]
        expected = 0.0 if np.isnan(expected) else expected
        assert ours[n].item() == pytest.approx(expected, abs=1e-5)


# --- deletion / insertion ---------------------------------------------------------------


def xplique_causal_fidelity(net, z, explanations, target, mode, steps=10, baseline=0.0):
    """Xplique's Deletion / Insertion, written out in numpy on channels-last inputs ``z`` in
    the model's input space: pixels ordered by the channel-mean explanation, descending;
    ``steps + 1`` states flipping ``linspace(0, H*W, steps + 1)`` pixels between the input
    and a constant ``baseline`` (one value, or one per channel); AUC = mean of
    ``(s_k + s_{k+1}) / 2`` (trapezoid, dx = 1/steps). Returns one AUC per image (Xplique
    averages over images before the AUC: the same mean)."""
    n, h, w, c = z.shape
    flat = z.reshape(n, h * w, c)
    order = np.argsort(explanations.mean(-1).reshape(n, -1), axis=-1)[:, ::-1]
    constant = np.full_like(flat, baseline)
    start, end = (flat, constant) if mode == "deletion" else (constant, flat)
    curve = []
    for count in np.linspace(0, h * w, steps + 1).astype(int):
        state = start.copy()
        for i in range(n):
            state[i, order[i, :count]] = end[i, order[i, :count]]
        images = torch.from_numpy(state.reshape(n, h, w, c)).permute(0, 3, 1, 2)
        with torch.no_grad():
            probs = torch.softmax(net(images), -1).numpy()
        curve.append(probs[np.arange(n), target])
    curve = np.stack(curve, axis=1)
    return (curve[:, :-1] + curve[:, 1:]).mean(axis=1) * 0.5


@pytest.mark.parametrize("size", [20, 224])
def test_paper_deletion_and_insertion_equal_xplique_definition(size):
    net = pixel_weighted(size, seed=2)
    model = pixel_model(net, size)
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(8))
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        target = model(x).argmax(-1)
    z = ((x - model.mean) / model.std).permute(0, 2, 3, 1).contiguous().numpy()
    explanations = a.permute(0, 2, 3, 1).numpy()
    for mode, ours in (
        ("deletion", deletion(model, x, a, target, steps=10, fill="model_zero")),
        ("insertion", insertion(model, x, a, target, steps=10, canvas="model_zero")),
    ):
        reference = xplique_causal_fidelity(net, z, explanations, target.numpy(), mode)
        relative = np.abs(ours.numpy() - reference) / np.abs(reference)
        assert relative.max() < 1e-3, (mode, ours, reference)
        # the comparison can tell: the reversed order or a black canvas is far off
        reversed_order = xplique_causal_fidelity(net, z, -explanations, target.numpy(), mode)
        black = xplique_causal_fidelity(net, z, explanations, target.numpy(), mode,
                                        baseline=-np.array(MEAN) / np.array(STD))
        for other in (reversed_order, black):
            assert (np.abs(ours.numpy() - other) / np.abs(other)).max() > 1e-2


def test_deletion_and_insertion_use_their_fill_and_canvas():
    model = pixel_model(small_cnn(), 16)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(10))
    a = torch.randn(x.shape)
    target = torch.tensor([0, 4])
    with torch.no_grad():
        at = lambda images: torch.softmax(model(images), -1)[torch.arange(2), target]
        for fill in ("black", "grey", "model_zero", "mean", 0.7):
            image = fill_image(model, x, fill)
            deleted = deletion_curve(model, x, a, target, steps=4, fill=fill)
            inserted = insertion_curve(model, x, a, target, steps=4, canvas=fill)
            assert torch.allclose(deleted[:, -1], at(image), atol=1e-6), fill
            assert torch.allclose(inserted[:, 0], at(image), atol=1e-6), fill
        blurred = deletion_curve(model, x, a, target, steps=4, fill="blur", blur_sigma=9.0)
        assert torch.allclose(blurred[:, -1], at(blur(x, 9.0)), atol=1e-6)


# --- the protocol config group ----------------------------------------------------------


def _eval_options(cfg) -> dict:
    return {name: {k: v for k, v in options.items() if k != "metric"}
            for name, options in cfg["eval"].items() if isinstance(options, dict)}


def _protocol_options(cfg) -> dict:
    """The options of the metrics a protocol defines (ROAD and completeness, which the
    faithfulness experiment also runs, take none from it)."""
    return {k: v for k, v in _eval_options(cfg).items() if k in PAPER}


PAPER = {
    "mufidelity": {"grid": 9, "fraction": 0.2, "subsets": 200, "masks": "bernoulli",
                   "fill": "model_zero", "correlation": "spearman", "nan_to_zero": True,
                   "blur_sigma": 5.0},
    "deletion": {"steps": 10, "fill": "model_zero", "blur_sigma": 5.0},
    "insertion": {"steps": 10, "canvas": "model_zero", "blur_sigma": 5.0},
}
RISE = {
    "mufidelity": {"grid": 9, "fraction": 0.2, "subsets": 128, "masks": "exact",
                   "fill": "black", "correlation": "pearson", "nan_to_zero": False,
                   "blur_sigma": 5.0},
    "deletion": {"steps": 100, "fill": "black", "blur_sigma": 5.0},
    "insertion": {"steps": 100, "canvas": "blur", "blur_sigma": 5.0},
}


def test_uni_run_cfg_job_profile_paper_resolves_to_the_paper_protocol():
    result = subprocess.run(
        [sys.executable, "-m", "uni.run", "--cfg", "job", "profile=paper",
         "experiment=faithfulness"], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _protocol_options(yaml.safe_load(result.stdout)) == PAPER


@pytest.fixture(scope="module")
def composed():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield lambda *overrides: OmegaConf.to_container(
            compose("config", overrides=list(overrides)), resolve=True)


def test_protocol_group_and_profiles(composed):
    faithfulness = "experiment=faithfulness"
    assert _protocol_options(composed(faithfulness)) == PAPER  # the default protocol
    assert _protocol_options(composed("protocol=rise", faithfulness)) == RISE
    assert _protocol_options(composed("profile=rise", faithfulness)) == RISE
    assert _protocol_options(composed("profile=rise", "protocol=paper", faithfulness)) == PAPER
    assert _protocol_options(composed("profile=dev", faithfulness)) == PAPER
    # the metric files' own defaults are the RISE choices (earlier results regenerate)
    for name, options in RISE.items():
        config = yaml.safe_load((ROOT / "conf" / "eval" / f"{name}.yaml").read_text())
        assert {k: v for k, v in config.items() if k != "metric"} == options
    # quick: the paper's definitions with fewer MuFidelity subsets
    quick = _protocol_options(composed("profile=quick", faithfulness))
    assert quick["mufidelity"] == {**PAPER["mufidelity"], "subsets": 64}
    assert quick["deletion"] == PAPER["deletion"] and quick["insertion"] == PAPER["insertion"]
    # experiments come last and still override the protocol's values
    calibration = _protocol_options(composed("experiment=calibration"))
    assert calibration["mufidelity"]["subsets"] == 32
    assert calibration["deletion"]["steps"] == calibration["insertion"]["steps"] == 10
    assert calibration["mufidelity"]["correlation"] == "spearman"


def test_robustness_and_stability_runs_are_unaffected_by_the_protocol(composed):
    """The protocol sets options for every faithfulness metric; a run that did not select
    them keeps its metric options and its record hashes."""
    for experiment, metric in (("robustness", "robustness"), ("stability", "stability")):
        cfgs = [composed(f"experiment={experiment}", f"protocol={p}") for p in ("paper", "rise")]
        options = [_eval_options(cfg)[metric] for cfg in cfgs]
        assert options[0] == options[1]
        hashes = [record_keys(cfg, {}) for cfg in cfgs]
        assert hashes[0] == hashes[1]
        bare = cfgs[0]
        bare["eval"] = {k: v for k, v in bare["eval"].items()
                        if isinstance(v, dict) and "metric" in v}  # the selected metrics
        assert record_keys(bare, {}) == hashes[0]


def test_a_misspelt_protocol_or_profile_is_a_one_line_error():
    check_group_overrides(["protocol=rise", "profile=rise"])
    for override, message in (("protocol=rsie", "protocol='rsie' is not one of"),
                              ("profile=papr", "profile='papr' is not one of")):
        with pytest.raises(ConfigError, match=message):
            check_group_overrides([override])


def test_protocol_files_set_only_known_options():
    for protocol in ("paper", "rise"):
        path = ROOT / "conf" / "protocol" / f"{protocol}.yaml"
        assert path.read_text().startswith("# @package _global_\n")
        for name, options in yaml.safe_load(path.read_text())["eval"].items():
            check_options(name, options)

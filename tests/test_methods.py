"""Attribution methods (issue 3, "Must show"): IG against Captum, completeness, DeepLIFT's
rules, UNI's baseline and its vmap/loop paths, per-image determinism, every method on
every architecture, Riemann rules.

Kept fast on 2 CPU cores: few steps, one or two photos on EfficientNet-Lite0 (real
ImageNet weights), 32 px inputs on the random-weight timm ResNet-18 / ViT-Tiny.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from captum.attr import IntegratedGradients
from captum.attr._core import deep_lift as captum_deep_lift
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

import uni
from uni.errors import ConfigError
from uni.methods import METHODS, TRIVIAL_METHODS, explain, riemann_rule
from uni.methods.path import integrated_gradients

# the package re-exports functions named like these modules
deeplift_module = importlib.import_module("uni.methods.deeplift")
unlearning = importlib.import_module("uni.methods.unlearning")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Setting forward, backward hooks"),
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
    pytest.mark.filterwarnings("ignore:There is a performance drop"),
]


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().sum() / b.abs().sum()).item()


@pytest.fixture(scope="module")
def photo(photos):
    x, ids = photos
    return x[:1], ids[:1]


@pytest.fixture(scope="module")
def images():
    """Three 32 px images in [0, 1] (module-scoped ``small_images``)."""
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


class Probabilities(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(-1)


# ---------------------------------------------------------------- 6. Riemann rules


@pytest.mark.parametrize(
    "rule,alphas,weights",
    [
        ("right", [0.25, 0.5, 0.75, 1.0], [0.25] * 4),
        ("left", [0.0, 0.25, 0.5, 0.75], [0.25] * 4),
        ("middle", [0.125, 0.375, 0.625, 0.875], [0.25] * 4),
        ("trapezoid", [0.0, 1 / 3, 2 / 3, 1.0], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    ],
)
def test_riemann_rule_alphas_and_weights(rule, alphas, weights):
    a, w = riemann_rule(4, rule)
    assert torch.allclose(a, torch.tensor(alphas, dtype=a.dtype))
    assert torch.allclose(w, torch.tensor(weights, dtype=w.dtype))
    for steps in (2, 3, 7, 64):
        a, w = riemann_rule(steps, rule)
        assert a.shape == w.shape == (steps,)
        assert abs(w.sum().item() - 1) < 1e-12
        assert a.min() >= 0 and a.max() <= 1 and (a.diff() > 0).all()


@pytest.mark.parametrize("rule", ["right", "left", "middle", "trapezoid"])
def test_riemann_rule_against_captum(rule):
    """Same alphas as Captum 0.9; same weights except trapezoid: Captum's
    ``riemann_trapezoid`` uses step sizes 1/n with halved end points (they sum to
    (n-1)/n), ours 1/(n-1) with halved end points (sum 1, so that completeness holds):
    ours = Captum's * n/(n-1)."""
    n = 8
    step_sizes, alphas = approximation_parameters(f"riemann_{rule}")
    a, w = riemann_rule(n, rule)
    captum_w = torch.tensor(step_sizes(n), dtype=w.dtype)
    assert torch.allclose(a, torch.tensor(alphas(n), dtype=a.dtype), atol=1e-7)
    scale = n / (n - 1) if rule == "trapezoid" else 1.0
    assert torch.allclose(w, captum_w * scale, atol=1e-12)
    if rule == "trapezoid":
        assert abs(captum_w.sum().item() - (n - 1) / n) < 1e-12


def test_riemann_rule_rejects_bad_settings():
    for steps in (0, -1):
        with pytest.raises(ConfigError):
            riemann_rule(steps, "right")
    with pytest.raises(ConfigError):
        riemann_rule(1, "trapezoid")
    with pytest.raises(ConfigError):
        riemann_rule(8, "simpson")
    assert riemann_rule(1, "right")[1].tolist() == [1.0]


# ---------------------------------------------------------------- 1. IG == Captum


def _captum_ig(model, x, baseline, target, steps, rule, output):
    forward = Probabilities(model) if output == "prob" else model
    expected = IntegratedGradients(forward).attribute(
        x, baseline, target=target, n_steps=steps, method=f"riemann_{rule}",
        internal_batch_size=16,
    )
    # documented difference (see test_riemann_rule_against_captum): Captum's trapezoid
    # weights sum to (n-1)/n, ours to 1
    return expected * steps / (steps - 1) if rule == "trapezoid" else expected


@pytest.mark.parametrize("rule", ["right", "trapezoid"])
@pytest.mark.parametrize("method", ["ig_black", "ig_blur", "ig_uniform"])
def test_ig_equals_captum_on_lite0(lite0, photo, method, rule):
    x, ids = photo
    target = lite0(x).argmax(-1)
    ours, baseline = uni.attribute(
        lite0, x, target, method, steps=8, rule=rule, output="prob", return_baseline=True,
        image_ids=ids,
    )
    expected = _captum_ig(lite0, x, baseline, target, 8, rule, "prob")
    assert relative_l1(ours, expected) < 1e-4


@pytest.mark.parametrize("output", ["prob", "logit"])
@pytest.mark.parametrize("rule", ["right", "trapezoid", "left", "middle"])
@pytest.mark.parametrize("method", ["ig_black", "ig_blur", "ig_uniform"])
def test_ig_equals_captum_on_resnet(resnet, images, method, rule, output):
    target = torch.tensor([0, 3, 7])  # not the prediction: the target is passed through
    ours, baseline = uni.attribute(
        resnet, images, target, method, steps=8, rule=rule, output=output,
        return_baseline=True,
    )
    expected = _captum_ig(resnet, images, baseline, target, 8, rule, output)
    assert relative_l1(ours, expected) < 1e-4


# ---------------------------------------------------------------- 2. completeness


@pytest.mark.parametrize("rule", ["right", "left", "middle", "trapezoid"])
def test_ig_is_exactly_complete_on_a_linear_model(images, rule):
    """For a linear F_c every Riemann rule integrates exactly: the gap is rounding."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5)).eval()
    target = torch.tensor([0, 1, 2])
    result = integrated_gradients(model, images, torch.zeros_like(images), target, 3, rule,
                                  "logit")
    assert (result.diagnostics["completeness_gap"] < 1e-4).all()


def test_ig_black_completeness_gap_on_resnet(resnet, images):
    """256 steps, logit. The random-weight ResNet's logit barely moves from black to
    the image (|F_c(x) - F_c(0)| = 0.03-0.05) and its ReLU/max-pool kinks make the
    integrand rough, so the relative gap is a Riemann error (identical in float64) that
    shrinks with the steps: gaps 0.11%, 0.81%, 1.53% at 256 steps (right rule),
    0.9-6.2% at 64. The 1% target holds on average, not for every image."""
    gaps = {}
    for steps in (64, 256):
        result = explain(resnet, images, None, "ig_black", steps=steps, output="logit",
                         internal_batch_size=128)
        gaps[steps] = result.diagnostics["completeness_gap"]
    assert (gaps[256] < 0.02).all()
    assert gaps[256].mean() < 0.01
    assert gaps[256].mean() < gaps[64].mean() / 3


# ---------------------------------------------------------------- 3. DeepLIFT


@pytest.mark.parametrize("output", ["logit", "prob"])
def test_deeplift_is_complete_on_relu_resnet(resnet, images, output):
    """Needs the fixes in uni.methods.deeplift: Captum's max-pool rule drops overlapping
    windows' shares, its hooks misorder when ReLU feeds MaxPool directly, and its
    softmax rule is incomplete (relative deltas 30-134% before the fixes)."""
    result = explain(resnet, images, None, "deeplift", output=output)
    assert (result.diagnostics["completeness_gap"] < 1e-3).all()
    assert result.attributions.shape == images.shape


def test_deeplift_per_image_independent_of_batch(resnet, images):
    """Captum's softmax rule subtracted a mean over the whole batch tensor (about 1%
    change in an image's attributions depending on its batch)."""
    ids = ["a", "b", "c"]
    batch = explain(resnet, images, None, "deeplift", image_ids=ids).attributions
    alone = explain(resnet, images[1:2], None, "deeplift", image_ids=ids[1:2]).attributions
    assert relative_l1(alone[0], batch[1]) < 1e-5


def test_deeplift_on_lite0_photos_has_small_delta(lite0, photos):
    """ReLU6 through the rescale rule: measured relative deltas ~6e-7 and ~3e-7."""
    x, ids = photos
    result = explain(lite0, x, None, "deeplift", image_ids=ids)
    d = result.diagnostics
    assert (d["completeness_gap"] < 1e-4).all()
    total = result.attributions.flatten(1).sum(1)
    assert torch.allclose(total, d["score_input"] - d["score_baseline"], atol=1e-5)


def _state(model):
    return [getattr(m, "inplace", None) for m in model.modules()]


def test_deeplift_context_restores_captum_registry_and_inplace(resnet, images):
    registry = captum_deep_lift.SUPPORTED_NON_LINEAR
    before, inplace_before = dict(registry), _state(resnet)
    assert any(flag is True for flag in inplace_before)
    explain(resnet, images[:1], None, "deeplift")
    assert registry == before and _state(resnet) == inplace_before
    with pytest.raises(RuntimeError, match="boom"):
        with deeplift_module.rescale_rule_for_all_activations(resnet):
            assert registry[nn.ReLU6] is captum_deep_lift.nonlinear
            assert registry[nn.MaxPool2d] is not before[nn.MaxPool2d]
            assert not any(flag is True for flag in _state(resnet))
            raise RuntimeError("boom")
    assert registry == before and _state(resnet) == inplace_before
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in resnet.modules())


# ---------------------------------------------------------------- 4. UNI


def _check_ball(result, x, eps, norm):
    baseline, d = result.baselines, result.diagnostics
    assert (d["p_c_baseline"] < d["p_c_input"]).all()
    delta = (x - baseline).flatten(1)
    distance = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (distance <= eps + 1e-6).all()
    assert torch.allclose(d[f"dist_{norm}"], distance)
    assert (distance > 0).all()  # it moved
    assert baseline.min() >= 0 and baseline.max() <= 1


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_uni_baseline_on_resnet_and_vit(resnet, vit, images, norm, eps):
    """On the random-weight ViT the default eta=1 overshoots (one image's p_c under the
    unlearned weights rises to 0.98), so it is unlearned with eta=0.01."""
    for model, eta in ((resnet, 1.0), (vit, 0.01)):
        result = explain(model, images, None, "uni", steps=4, pgd_steps=3, norm=norm,
                         eps=eps, eta=eta)
        _check_ball(result, images, eps, norm)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 2.0)])
def test_uni_baseline_on_lite0_photos(lite0, photos, norm, eps):
    x, ids = photos
    result = explain(lite0, x, None, "uni", steps=4, pgd_steps=3, norm=norm, eps=eps,
                     image_ids=ids)
    _check_ball(result, x, eps, norm)
    d = result.diagnostics
    assert (d["p_c_unlearned"] < d["p_c_input"]).all()


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
@pytest.mark.parametrize("option", ["random_start", "reverse"])
def test_uni_random_start_and_reverse_kl_respect_the_ball(resnet, images, option, norm, eps):
    plain = explain(resnet, images, None, "uni", steps=4, pgd_steps=3, norm=norm, eps=eps)
    options = {"random_start": True} if option == "random_start" else {"kl_direction": "reverse"}
    result = explain(resnet, images, None, "uni", steps=4, pgd_steps=3, norm=norm, eps=eps,
                     **options)
    _check_ball(result, images, eps, norm)
    assert torch.isfinite(result.attributions).all()
    assert not torch.equal(result.baselines, plain.baselines)
    if option == "random_start":  # the start itself lies in the ball
        start = explain(resnet, images, None, "uni", steps=2, pgd_steps=0, norm=norm,
                        eps=eps, random_start=True).baselines
        distance = (start - images).flatten(1)
        distance = distance.abs().amax(1) if norm == "linf" else distance.norm(dim=1)
        assert (distance <= eps + 1e-6).all() and (distance > eps / 4).all()
        assert start.min() >= 0 and start.max() <= 1


def test_unlearned_logits_vmap_equals_loop(resnet, images):
    target = torch.tensor([1, 2, 3])
    loop, _ = unlearning.unlearned_logits(resnet, images, target, 0.5, unlearn_steps=2,
                                          mode="loop")
    vmap, _ = unlearning.unlearned_logits(resnet, images, target, 0.5, unlearn_steps=2,
                                          mode="vmap", chunk_size=2)
    assert relative_l1(vmap, loop) < 1e-4
    with torch.no_grad():
        assert not torch.allclose(loop, resnet(images))  # the step did something


def test_unlearning_moves_in_the_trained_parameterisation(resnet, images):
    """With BatchNorm folded for speed, UNI's unlearning step still moves in the trained
    parameters (folding changes the parameterisation, so the step would differ): the fast
    model gives UNI's baseline and attributions of the plain one (float64)."""
    import copy

    from uni.models import set_runtime

    plain = copy.deepcopy(resnet).double()
    fast = set_runtime(plain, fold_batchnorm=True, channels_last=True)
    x, target = images.double(), torch.tensor([1, 2, 3])
    logits, _ = unlearning.unlearned_logits(fast, x, target, 0.5)
    assert relative_l1(logits, unlearning.unlearned_logits(plain, x, target, 0.5)[0]) < 1e-9
    object.__delattr__(fast, "trained")  # unlearn in the folded parameters instead
    assert relative_l1(unlearning.unlearned_logits(fast, x, target, 0.5)[0], logits) > 1e-3
    object.__setattr__(fast, "trained", plain)
    a, b = (explain(m, x, target, "uni", steps=4, pgd_steps=3) for m in (plain, fast))
    assert relative_l1(b.baselines, a.baselines) < 1e-9
    assert relative_l1(b.attributions, a.attributions) < 1e-6


def test_uni_vmap_equals_loop_on_resnet(resnet, images):
    results = [
        explain(resnet, images, None, "uni", steps=4, pgd_steps=3, unlearn_mode=mode)
        for mode in ("loop", "vmap")
    ]
    assert relative_l1(results[1].attributions, results[0].attributions) < 1e-4


def test_uni_vmap_equals_loop_on_lite0(lite0, photo):
    """On the first photo. The second (espresso) has one ReLU6 input within float32
    rounding of its kink (block 6.0): the batched (vmap) and single-image kernels put
    it on different sides, the unlearned logits differ by ~1.6% and sign-PGD then
    finds a different baseline. In float64 the two paths agree to 1e-14 (too slow on
    CPU for a test; tests/test_uni_search.py checks it on a small net). Adam's search
    carries the float32 difference of q a little further than sign steps did: 3e-4."""
    x, ids = photo
    results = [
        explain(lite0, x, None, "uni", steps=4, pgd_steps=3, unlearn_mode=mode,
                image_ids=ids)
        for mode in ("loop", "vmap")
    ]
    assert relative_l1(results[1].attributions, results[0].attributions) < 1e-3


@pytest.mark.parametrize(
    "method,options",
    [
        ("uni", {"pgd_steps": 3}),
        ("uni", {"pgd_steps": 3, "random_start": True, "norm": "l2", "eps": 0.5}),
        ("ig_uniform", {}),
        ("ig_gaussian", {"samples": 2}),
    ],
)
@pytest.mark.parametrize("explicit_ids", [True, False])
def test_attribution_independent_of_the_batch(resnet, method, options, explicit_ids):
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    ids = ["img-a", "img-b", "img-c", "img-d"]

    def run(index):
        kw = {"image_ids": [ids[i] for i in index]} if explicit_ids else {}
        return explain(resnet, x[index], None, method, steps=4, **options, **kw)

    batch, alone, other = run([0, 1, 2, 3]), run([2]), run([3, 2, 0])
    assert relative_l1(alone.attributions[0], batch.attributions[2]) < 1e-4
    assert relative_l1(other.attributions[1], batch.attributions[2]) < 1e-4
    assert torch.allclose(alone.baselines[0], batch.baselines[2], atol=1e-6)
    # the noise is the image's own: different images get different draws
    assert not torch.allclose(batch.baselines[0] - x[0], batch.baselines[1] - x[1])


def test_noise_is_keyed_on_image_id_and_seed(resnet):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5)).repeat(2, 1, 1, 1)

    def baselines(ids, seed=0):
        return explain(resnet, x, None, "ig_uniform", steps=2, image_ids=ids, seed=seed).baselines

    same = baselines(["a", "a"])
    assert torch.equal(same[0], same[1])
    different = baselines(["a", "b"])
    assert torch.equal(different[0], same[0]) and not torch.equal(different[1], same[1])
    assert not torch.equal(baselines(["a", "a"], seed=1)[0], same[0])
    # content-hash default ids: equal pixels, equal ids, equal noise
    default = explain(resnet, x, None, "ig_uniform", steps=2).baselines
    assert torch.equal(default[0], default[1])


# ---------------------------------------------------------------- 5. every method runs


# cheap settings of the options a method has (UNI's and the controls' searches, AGI, BIG)
CHEAP = {"pgd_steps": 2, "distance": 0.5, "classes": 2, "attack_steps": 2, "refine": 2}
WITHOUT_BASELINE = {"gradient", "abs_gradient", "gradient_x_input", "agi"}  # not paths


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_every_method_runs_on_resnet_and_vit(request, images, method, arch):
    model = request.getfixturevalue(arch)
    accepted = METHODS[method].option_settings()
    options = {"steps": 4} if "steps" in accepted else {}
    options.update({k: v for k, v in CHEAP.items() if k in accepted})
    result = explain(model, images, None, method, **options)
    assert result.attributions.shape == images.shape
    assert torch.isfinite(result.attributions).all()
    assert result.attributions.abs().sum() > 0
    if method not in WITHOUT_BASELINE | TRIVIAL_METHODS:  # gradient maps, AGI, the floors
        assert result.baselines.shape == images.shape
    for value in result.diagnostics.values():
        assert value.shape == (images.shape[0],) and torch.isfinite(value).all()
    public = uni.attribute(model, images, None, method, **options)
    assert torch.allclose(public, result.attributions, atol=1e-6)


def test_explain_rejects_mismatched_ids_and_unknown_names(resnet, images):
    with pytest.raises(ConfigError, match="image_ids"):
        explain(resnet, images, None, "ig_uniform", steps=2, image_ids=["a", "b"])
    with pytest.raises(ConfigError):
        explain(resnet, images, None, "deeplift", baseline="grey")
    with pytest.raises(ConfigError):
        explain(resnet, images, None, "ig_median")


def test_uni_config_defaults_match_the_library_defaults():
    """`uni.attribute(method="uni")` and `method=uni` on the command line use the same
    calibrated hyperparameters."""
    import inspect
    from pathlib import Path

    import yaml

    from uni.methods.unlearning import uni_baseline

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "conf" / "method" / "uni.yaml").read_text()
    )
    signature = inspect.signature(uni_baseline).parameters
    names = [n for n, p in signature.items() if p.default is not inspect.Parameter.empty
             and n not in ("image_ids", "seed")]
    # added after the committed records and left out of uni.yaml so that UNI's record
    # keys stay the same: its default (the best iterate) is the earlier behaviour
    unlisted = {"pgd_return"}
    assert set(names) - unlisted <= set(config)
    for name in sorted(set(names) - unlisted):
        expected = signature[name].default
        if isinstance(expected, float):
            expected = pytest.approx(expected)
        assert config[name] == expected, name

"""Issue 31's methods: uni_paper, the gradient maps, AGI, BIG, the controls at UNI's
distance and IDGI, on models whose answers are known by hand, plus one CLI run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

import uni
from uni.errors import ConfigError
from uni.methods import METHODS, explain
from uni.methods.agi import adversarial_paths
from uni.methods.big import boundary_baseline
from uni.methods.controls import CONTROLS, at_distance, norm_of, stored_distances
from uni.methods.unlearning import PAPER, match_activations

ROOT = Path(__file__).resolve().parents[1]


class TinyNet(nn.Module):
    """A small ReLU network with 10 classes (piecewise linear)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x):
        return self.body(x)


class TwoClassLinear(nn.Module):
    """``z_0 = w . x``, ``z_1 = 0``: the decision boundary is the plane ``w . x = 0``."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        score = (x * self.w).flatten(1).sum(1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.fixture(scope="module")
def tiny():
    return TinyNet().eval()


@pytest.fixture(scope="module")
def pixels():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _plane(seed: int = 0, offset: float = 0.3):
    """A weight ``w``, a point ``x0`` on the plane ``w . x = 0`` near grey, and ``x`` at
    distance ``offset`` from it along ``w``."""
    w = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    grey = torch.full_like(w, 0.5)
    x0 = grey - (grey * w).sum() / (w * w).sum() * w
    return w, x0, x0 + offset * w / w.norm()


# ------------------------------------------------------------------------ uni_paper


def test_uni_paper_config_states_the_paper_values():
    config = yaml.safe_load((ROOT / "conf/method/uni_paper.yaml").read_text())
    for name, value in PAPER.items():
        assert config[name] == (pytest.approx(value) if isinstance(value, float) else value), name


def test_pgd_return_last_returns_the_last_iterate(tiny, pixels):
    log_q = torch.log_softmax(torch.randn(2, 10, generator=torch.Generator().manual_seed(2)), -1)
    _, last = match_activations(tiny, pixels, log_q, 4 / 255, "linf", 3, pgd_return="last")
    _, best = match_activations(tiny, pixels, log_q, 4 / 255, "linf", 3)
    assert (last["best_iteration"] == 3).all()
    assert (best["kl"] <= last["kl"] + 1e-7).all()


# ------------------------------------------------------------------- gradient maps


def test_gradient_maps_of_a_linear_logit_are_w_abs_w_and_x_w():
    w, _, x = _plane()
    model = TwoClassLinear(w)
    maps = {m: uni.attribute(model, x, 0, m, output="logit")
            for m in ("gradient", "abs_gradient", "gradient_x_input")}
    assert torch.allclose(maps["gradient"], w)
    assert torch.allclose(maps["abs_gradient"], w.abs())
    assert torch.allclose(maps["gradient_x_input"], x * w)


# ------------------------------------------------------------------------------ AGI


def test_agi_on_a_linear_model_by_hand():
    """Two classes, logit output: every step moves by ``-eps sign(w)`` (the ascent of
    ``p_1``) until class 1 wins, and adds ``eps |w|``; it takes ``S = floor(w.x / (eps
    ||w||_1)) + 1`` steps to cross."""
    w, _, x = _plane(offset=0.3)
    eps = 0.002
    steps = int((w * x).sum() / (eps * w.abs().sum())) + 1
    assert 1 < steps < 50
    result = explain(TwoClassLinear(w), x, torch.tensor([0]), "agi", classes=1, eps=eps,
                     attack_steps=50, output="logit")
    assert torch.allclose(result.attributions, steps * eps * w.abs(), rtol=1e-4, atol=1e-7)
    assert result.diagnostics["attack_steps"].item() == steps
    assert result.diagnostics["attack_success"].item() == 1


def test_agi_accumulates_along_ascending_attack_paths(tiny, pixels):
    """The defining property: each path ascends ``p_t``, and the attributions add up to
    ``sum_t (F_c(x) - F_c(x_t))`` to first order (small steps)."""
    target = tiny(pixels).argmax(-1)
    adversaries = torch.stack([torch.tensor([c for c in range(10) if c != t][:3])
                               for t in target.tolist()])
    attributions, ends, taken = adversarial_paths(tiny, pixels, target, adversaries, 1e-3, 15,
                                                  "logit")
    with torch.no_grad():
        start = tiny(pixels).repeat_interleave(3, 0)
        end = tiny(ends)
    goal = adversaries.flatten()
    p_goal = [torch.softmax(z, -1).gather(1, goal[:, None])[:, 0] for z in (start, end)]
    assert (taken > 0).all() and (p_goal[1] > p_goal[0]).all()
    owner = target.repeat_interleave(3)
    drop = (start.gather(1, owner[:, None]) - end.gather(1, owner[:, None]))[:, 0]
    expected = drop.view(2, 3).sum(1)
    assert torch.allclose(attributions.flatten(1).sum(1), expected, rtol=0.05, atol=1e-4)


# ------------------------------------------------------------------------------ BIG


def test_big_baseline_is_the_projection_on_the_plane_and_ig_from_it():
    """Linear two-class model: the nearest boundary point is ``x0``; PGD at radius 0.1
    does not cross (distance 0.3), at 0.5 it does, and bisection finds ``x0``."""
    w, x0, x = _plane(offset=0.3)
    model = TwoClassLinear(w)
    baseline, diagnostics = boundary_baseline(model, x, torch.tensor([0]), eps=[0.1, 0.5],
                                              pgd_steps=10, refine=24)
    assert diagnostics["boundary_radius"].item() == pytest.approx(0.5)
    assert torch.allclose(baseline, x0, atol=1e-5)
    result = explain(model, x, torch.tensor([0]), "big", eps=[0.1, 0.5], pgd_steps=10,
                     refine=24, steps=4, output="logit")
    assert torch.allclose(result.attributions, (x - result.baselines) * w, atol=1e-6)


def test_big_baseline_lies_on_the_decision_boundary(tiny, pixels):
    target = tiny(pixels).argmax(-1)
    baseline, diagnostics = boundary_baseline(tiny, pixels, target, eps=[0.5, 2.0, 8.0],
                                              pgd_steps=10, refine=16)
    crossed = diagnostics["on_boundary"] == 1
    assert crossed.all()
    logits = tiny(baseline).detach()
    assert (logits.argmax(-1) != target).all()  # just across
    scale = logits.abs().amax(-1)
    assert (diagnostics["margin"].abs() < 1e-3 * scale).all()  # but on it


# ------------------------------------------------------------------------- controls


def test_at_distance_undoes_clipping():
    x = torch.full((2, 3, 8, 8), 0.97)
    direction = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    for norm, radius in (("l2", 1.0), ("linf", 0.5)):
        point = at_distance(x, direction, torch.tensor([radius, radius / 2]), norm)
        assert point.min() >= 0 and point.max() <= 1
        assert torch.allclose(norm_of(point - x, norm), torch.tensor([radius, radius / 2]),
                              rtol=1e-5)
    # out of reach: as far as the box allows; no direction: x itself
    far = at_distance(x[:1], direction[:1].abs(), torch.tensor([10.0]), "linf")
    assert torch.allclose(far, torch.ones_like(far))
    assert torch.equal(at_distance(x[:1], torch.zeros_like(x[:1]), torch.tensor([1.0]), "l2"),
                       x[:1])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_controls_sit_at_uni_distance(tiny, pixels, norm):
    options = {"pgd_steps": 2}
    reference = explain(tiny, pixels, None, "uni", steps=2, **options)
    distance = {"kind": "uni", **options}
    for name in CONTROLS:
        extra = {"pgd_steps": 2} if name == "adv_baseline" else {}
        result = explain(tiny, pixels, None, name, steps=2, distance=distance, norm=norm,
                         **extra)
        expected = reference.diagnostics[f"dist_{norm}"]
        assert torch.allclose(result.diagnostics[f"dist_{norm}"], expected, rtol=1e-4), name


# ----------------------------------------------------------------------------- IDGI


def test_idgi_ig_black_is_complete_on_lite0(lite0, photos):
    images, ids = photos
    x = images[:1]
    result = explain(lite0, x, None, "ig_black", steps=32, idgi=True, image_ids=ids[:1])
    total = result.attributions.double().sum()
    difference = result.diagnostics["score_input"] - result.diagnostics["score_baseline"]
    assert total.item() == pytest.approx(difference.item(), rel=1e-3)


PATH_METHODS = sorted(m for m, spec in METHODS.items() if "idgi" in spec.option_settings())
CHEAP = {
    "uni": {"pgd_steps": 2}, "uni_paper": {"pgd_steps": 2},
    "adv_baseline": {"pgd_steps": 2, "distance": 0.5},
    **{c: {"distance": 0.5} for c in CONTROLS if c != "adv_baseline"},
    "big": {"pgd_steps": 2, "eps": [0.5, 4.0], "refine": 2},
    "agi": {"classes": 2, "attack_steps": 2},
    "expected_gradients": {"samples": 2},
}


@pytest.mark.parametrize("rule", ["right", "left", "middle", "trapezoid"])
def test_idgi_equals_its_definition_for_every_rule(tiny, pixels, rule):
    """Streamed in chunks that split an image's steps, IDGI equals ``sum_k g_k^2 /
    ||g_k||^2 d_k`` computed directly, ``d_k`` the output change from point k to the next
    (the first step also from the baseline, the last to x)."""
    from uni.methods.path import riemann_rule

    steps = 5
    result = explain(tiny, pixels, None, "ig_black", steps=steps, rule=rule, idgi=True,
                     output="logit", internal_batch_size=3)
    target = tiny(pixels).argmax(-1)
    alphas, _ = riemann_rule(steps, rule)
    expected = torch.zeros_like(pixels)
    for i in range(len(pixels)):
        points = (alphas.float().view(-1, 1, 1, 1) * pixels[i]).requires_grad_(True)
        scores = tiny(points)[:, target[i]]
        (grads,) = torch.autograd.grad(scores.sum(), points)
        ends = tiny(torch.stack([torch.zeros_like(pixels[i]), pixels[i]]))[:, target[i]]
        along = torch.cat([ends[:1], scores.detach(), ends[1:]])
        for k in range(steps):
            change = along[k + 2] - along[k + 1] + (along[1] - along[0] if k == 0 else 0)
            expected[i] += grads[k] ** 2 / (grads[k] ** 2).sum() * change
    assert torch.allclose(result.attributions, expected, atol=1e-6)
    assert (result.diagnostics["completeness_gap"] < 1e-4).all()


def test_every_new_method_and_every_path_method_with_idgi_is_finite(tiny, pixels):
    """``uni.attribute`` for each method of issue 31, and each path method with IDGI
    (complete: IDGI's steps sum to the output change)."""
    reference = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    new = ["uni_paper", *CONTROLS, "gradient", "abs_gradient", "gradient_x_input", "agi",
           "big"]
    for method in new:
        attributions = uni.attribute(tiny, pixels, None, method, **CHEAP.get(method, {}))
        assert attributions.shape == pixels.shape and torch.isfinite(attributions).all(), method
    assert set(new) < set(PATH_METHODS) | {"gradient", "abs_gradient", "gradient_x_input",
                                          "agi"}
    for method in PATH_METHODS:
        options = dict(CHEAP.get(method, {}))
        if method == "expected_gradients":
            options["reference"] = reference
        result = explain(tiny, pixels, None, method, steps=3, idgi=True, output="logit",
                         **options)
        assert torch.isfinite(result.attributions).all(), method
        assert (result.diagnostics["completeness_gap"] < 1e-3).all(), method
        assert not METHODS[method].is_straight_line({"idgi": True}), method


@pytest.mark.parametrize("entry", ["uni_idgi", "ig_blur_tuned", "ig_uniform_tuned",
                                   "ig_gaussian_tuned", "expected_gradients_tuned"])
def test_attribute_takes_every_conf_entry_the_command_line_takes(tiny, pixels, entry):
    """A report's row (``uni_idgi``, ``ig_blur_tuned``) names a conf/method entry of another
    method: ``uni.attribute(method=entry)`` runs what ``method=entry`` runs on the command
    line, that method with the entry's options (the CLI and the API take the same names)."""
    entry_conf = yaml.safe_load((ROOT / "conf" / "method" / f"{entry}.yaml").read_text())
    kind = entry_conf["kind"]
    own = yaml.safe_load((ROOT / "conf" / "method" / f"{kind}.yaml").read_text())
    stated = {k: v for k, v in entry_conf.items() if k != "kind" and own.get(k) != v}
    assert stated  # the entry differs from its method
    cheap = {**{k: v for k, v in CHEAP.get(kind, {}).items() if k not in stated}, "steps": 3}
    torch.manual_seed(0)
    by_entry = uni.attribute(tiny, pixels, None, entry, **cheap)
    torch.manual_seed(0)
    by_kind = uni.attribute(tiny, pixels, None, kind, **stated, **cheap)
    torch.manual_seed(0)
    plain = uni.attribute(tiny, pixels, None, kind, **cheap)
    assert torch.equal(by_entry, by_kind) and not torch.equal(by_entry, plain)
    with pytest.raises(ConfigError, match="is not one of"):
        uni.attribute(tiny, pixels, None, entry + "_misspelt")


def test_the_command_line_runs_every_new_method_with_mufidelity(tmp_path):
    """One run of all new methods (cheap settings); the controls' recorded distance is
    UNI's for the same image (the run's own UNI options reach them)."""
    out = tmp_path / "run"
    methods = ["uni", "uni_paper", "uni_idgi", *CONTROLS, "gradient", "abs_gradient",
               "gradient_x_input", "agi", "big"]
    result = subprocess.run(
        [sys.executable, "-m", "uni.run", "model=resnet18_random", "data=embedded",
         "data.limit=1", f"method=[{','.join(methods)}]", "eval=[mufidelity]",
         "attribution.steps=2", "eval.mufidelity.subsets=4", "method.uni.pgd_steps=2",
         "+method.uni_idgi.pgd_steps=2", "method.uni_paper.pgd_steps=2",
         "method.adv_baseline.pgd_steps=2", "method.agi.classes=2",
         "method.agi.attack_steps=2", "method.big.pgd_steps=2", "method.big.refine=2",
         f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = pd.read_parquet(out / "records.parquet")
    assert set(records["method"]) == set(methods)
    assert np.isfinite(records["value"]).all()
    by_image = records.set_index(["method", "image_id"])["dist_l2"]
    for name in CONTROLS:
        assert np.allclose(by_image[name].sort_index(), by_image["uni"].sort_index(),
                           rtol=1e-4), name


def test_controls_read_unis_distance_from_the_attribution_store(tmp_path):
    from uni.attribution_store import AttributionStore

    store = AttributionStore(tmp_path)
    options = {"distance": {"kind": "uni", "pgd_steps": 2}, "norm": "l2"}

    def stored(entry):  # what the run gives: images a, b of entry "uni", all or nothing
        found = [store.get("k-uni", i, d) for i, d in (("a", "da"), ("b", "db"))]
        return None if entry != "uni" or None in found else found

    store.put("k-uni", "a", "da", {"diagnostic/dist_l2": torch.tensor(1.25)})
    assert stored_distances(options, stored) is options
    store.put("k-uni", "b", "db", {"diagnostic/dist_l2": torch.tensor(0.5)})
    read = stored_distances(options, stored)
    assert torch.equal(read["distance"], torch.tensor([1.25, 0.5]))
    linf = {**options, "norm": "linf"}  # not stored for this norm: computed
    assert stored_distances(linf, stored) is linf
    assert stored_distances({"distance": 0.5}, stored) == {"distance": 0.5}  # a number

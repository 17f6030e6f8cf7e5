"""Stage clocks, model-pass logs and their replay (uni.profiling), and ``uni --plan``."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from uni.profiling import PassLog, StageClock, replay_seconds

ROOT = Path(__file__).resolve().parents[1]


def test_stage_clock_adds_up_repeated_stages():
    clock = StageClock()
    for _ in range(2):
        with clock.stage("a"):
            sum(range(1000))
    with clock.stage("b"):
        pass
    assert set(clock.seconds) == {"a", "b"}
    assert clock.total == clock.seconds["a"] + clock.seconds["b"] > 0


def test_pass_log_counts_rows_with_and_without_gradients_and_follows_copies(resnet,
                                                                            small_images):
    log = PassLog().attach(resnet)
    with torch.no_grad():
        resnet(small_images[:3])
    x = small_images[:2].clone().requires_grad_(True)
    torch.autograd.grad(resnet(x).sum(), x)
    copy.deepcopy(resnet)(small_images[:1])  # a surrogate made while attached is logged too
    log.detach()
    resnet(small_images[:3])  # detached: not logged
    assert log.rows(grad=False) == 3
    assert log.rows(grad=True) == 2 + 1
    assert log.rows() == 6


def test_replay_makes_the_logged_calls_again(resnet, small_images):
    log = PassLog().attach(resnet)
    with torch.no_grad():
        resnet(small_images[:3])
        resnet(small_images[:3])
    x = small_images[:2].clone().requires_grad_(True)
    torch.autograd.grad(resnet(x).sum(), x)
    log.detach()
    again = PassLog().attach(resnet)
    seconds = replay_seconds(log)
    again.detach()
    assert seconds > 0
    assert again.calls == log.calls


def test_two_input_gradients_from_one_forward_are_two_backward_passes(resnet, small_images):
    """AGI takes the gradients of p_t and of F_c from one forward pass: the log counts both
    backward passes and the replay makes them (its floor is not a single backward's)."""
    log = PassLog().attach(resnet)
    x = small_images[:2].clone().requires_grad_(True)
    out = resnet(x)
    torch.autograd.grad(out[:, 0].sum(), x, retain_graph=True)
    torch.autograd.grad(out[:, 1].sum(), x)
    y = small_images[:2].clone().requires_grad_(True)
    torch.autograd.grad(resnet(y).sum(), y)  # a plain call: one
    log.detach()
    assert log.backwards[(id(resnet), (2, *small_images.shape[1:]))] == 3

    backwards = []
    hook = resnet.register_full_backward_hook(lambda *args: backwards.append(1))
    replay_seconds(log)
    hook.remove()
    assert len(backwards) == 3  # not one per call


def test_plan_prints_the_cost_and_stores_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "uni.run", "--plan", "model=efficientnet_lite0", "data=embedded",
         "method=[ig_black,uni]", "eval=[mufidelity]", "data.limit=50000",
         "attribution.steps=4", "method.uni.pgd_steps=2", "eval.mufidelity.subsets=16",
         f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plan: explaining and scoring 1 image(s)" in result.stderr  # before the wait
    lines = result.stdout.splitlines()
    assert lines[0].startswith("plan run: 8 images on cpu; calibrated on 1 image(s)")
    # IG: 4 gradient rows; UNI: unlearning, search and path gradients; MuFidelity: 16
    # forward rows (its perturbed images are shared by the two methods)
    passes = next(line for line in lines if "model passes per image" in line)
    forward, gradient = (int(w) for w in passes.split() if w.isdigit())
    assert forward >= 16 and gradient >= 4 + 4 + 2
    assert "explain/uni" in result.stdout and "metric/mufidelity" in result.stdout
    assert "estimated wall time" in result.stdout
    assert not (out / "records.parquet").exists() and not (out / "records.parts").exists()


def _topk_attack_module():
    import importlib.util

    path = ROOT / "benchmarks" / "topk_attack.py"
    spec = importlib.util.spec_from_file_location("topk_attack", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_surrogate_steps_selection_takes_the_fewest_as_strong_as_the_full_attack():
    import numpy as np
    import pandas as pd

    select = _topk_attack_module().select
    rng = np.random.default_rng(0)
    full = rng.uniform(0.02, 0.06, 12)
    columns = {(32, "a"): full, (32, "b"): full,
               (4, "a"): full + 0.2, (4, "b"): full,  # 4 steps: weaker for method a
               (8, "a"): full + 0.001, (8, "b"): full - 0.01}  # 8: as strong for both
    table = pd.DataFrame(columns, index=[f"i{n}" for n in range(12)])
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    chosen = select(table)
    assert chosen["chosen"] == 8 and chosen["images"] == 12
    assert {(e["surrogate_steps"], e["method"]): e["as_strong"] for e in chosen["evidence"]}[
        (4, "a")] is False
    assert select(table.iloc[:5])["chosen"] is None  # fewer than 10 images: no choice


def test_surrogate_steps_selection_refuses_a_sweep_with_a_setting_not_yet_run(tmp_path):
    intersections = _topk_attack_module().intersections
    for steps in (8, 32):
        (tmp_path / f"eval.robustness.surrogate_steps={steps}" / ".hydra").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"not a finished calibration sweep \(eval.robustness"
                                         r".surrogate_steps=32,? .*without records.parquet"):
        intersections(tmp_path)
    with pytest.raises(SystemExit, match="is not a folder"):
        intersections(tmp_path / "absent")


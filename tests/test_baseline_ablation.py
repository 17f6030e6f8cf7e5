"""The baselines' tuning budget (uni/analysis/baseline_ablation.py): UNI's rule picks one setting
per method from runs on the tuning subset."""

import pandas as pd
import pytest
import yaml

from tests.test_selection import composed
from uni.analysis.ablation import CRITERIA, featureless_on_hardest
from uni.analysis.baseline_ablation import (
    baseline_ablation_records,
    select_baselines,
    write_baseline_ablation,
)
from uni.engine.checks import check_config
from uni.errors import ConfigError
from uni.records import RecordStore


def _run(root, method, options, quality, p_c, images=30):
    name = f"{method}-" + "-".join(f"{k}{v}" for k, v in options.items())
    run_dir = root / "baseline_ablation" / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"method": {method: {"steps": 16, **options}}, "output": "prob",
         "model": {"name": "m"}}))
    rows = [{"image_id": f"img{i}", "split": "dev", "model": "m", "method": method,
             "metric": metric, "value": direction * quality + 0.001 * i, "config_hash": name,
             "seed": 0, "score_baseline": p_c if i == 0 else 0.01}
            for i in range(images) for metric, direction in CRITERIA.items()
            if metric != "insertion-deletion"]
    RecordStore(run_dir).write(rows)
    return name


def test_the_rule_selects_one_setting_per_method(tmp_path):
    _run(tmp_path, "ig_blur", {"sigma": 2.0}, 0.9, p_c=0.8)  # best, but keeps the class
    chosen = _run(tmp_path, "ig_blur", {"sigma": 20.0}, 0.5, p_c=0.1)
    _run(tmp_path, "ig_gaussian", {"sigma": 0.1, "samples": 1}, 0.2, p_c=0.1)
    best = _run(tmp_path, "ig_gaussian", {"sigma": 0.2, "samples": 4}, 0.6, p_c=0.1)
    _run(tmp_path, "ig_uniform", {"samples": 1}, 0.6, p_c=0.7)  # complete, keeps the class
    _run(tmp_path, "ig_uniform", {"samples": 4}, 0.6, p_c=0.9, images=10)  # so already
    _run(tmp_path, "expected_gradients", {"samples": 4}, 0.6, p_c=0.1, images=10)
    records = baseline_ablation_records(tmp_path)
    assert set(records["setting"]) == {"sigma=2.0", "sigma=20.0", "sigma=0.1 samples=1",
                                       "sigma=0.2 samples=4", "samples=1", "samples=4"}
    hard = pd.DataFrame([{"run": chosen, "max_p_c_hard": 0.2},
                         {"run": best, "max_p_c_hard": 0.3}])
    selection = select_baselines(records, hard)
    picked = selection[selection["selected"]].set_index("method")["setting"].to_dict()
    assert picked == {"ig_blur": "sigma=20.0", "ig_gaussian": "sigma=0.2 samples=4"}
    blur = selection[selection["setting"] == "sigma=2.0"].iloc[0]
    assert not blur["eligible"] and blur["max_p_c_baseline"] == pytest.approx(0.8)
    lines = write_baseline_ablation(tmp_path)
    assert any(line.startswith("`ig_blur`: **nothing selected yet**") for line in lines)
    # every setting complete and none featureless: said so, not "not yet"
    assert "`ig_uniform`: **none of its 2 settings is featureless** (p_c(x') < 0.5 on every " \
        "image; the lowest maximum is 0.700, at samples=1): no tuned value" in lines
    assert any(line.startswith("`expected_gradients`: **nothing selected yet**")  # n < 30,
               # and featureless so far
               for line in lines)
    assert (tmp_path / "tables" / "baseline_ablation_selection.csv").exists()


def test_baseline_ablation_runs_on_the_tuning_subset_only():
    check_config(composed("experiment=baseline_ablation"))
    with pytest.raises(ConfigError, match="data.subset=tune only"):
        check_config(composed("experiment=baseline_ablation", "data.subset=all"))
    tuned = composed("experiment=faithfulness",
                     "method=[ig_blur,ig_blur_tuned,ig_gaussian_tuned,expected_gradients_tuned]")
    check_config(tuned)
    assert tuned["method"]["ig_blur_tuned"]["kind"] == "ig_blur"


def test_featureless_check_reads_any_methods_baselines(resnet, small_images):
    import torch

    with torch.no_grad():
        target = resnet(small_images).argmax(-1)
    images = (small_images, target, ["a", "b", "c"])
    worst = featureless_on_hardest(resnet, images, {"sigma": 0.5}, method="ig_gaussian")
    assert 0 < worst <= 1
    with torch.no_grad():  # the black baseline: the model's p_c on zeros
        expected = resnet(torch.zeros_like(small_images)).softmax(-1).gather(
            1, target[:, None]).max()
    assert featureless_on_hardest(resnet, images, {}, method="ig_black") == pytest.approx(
        float(expected))


def test_hardest_check_reads_expected_gradients_reference_from_the_runs_split(tmp_path):
    """``reference: split`` is completed from the run's data (root: the folder given), as
    the runner does: the check draws Expected Gradients' baselines from that folder."""
    import numpy as np
    from PIL import Image

    from uni.analysis.ablation import check_hardest
    from uni.analysis.baseline_ablation import EXPERIMENT, FEATURELESS_FILE

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537", "n01484850", "n01491361"):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            folder / f"{wnid}_x.JPEG")
    run = _run(tmp_path, "expected_gradients", {"samples": 2}, 0.5, p_c=0.1)
    # still running, featureless so far: checked too (failing there, it holds nothing up)
    running = _run(tmp_path, "expected_gradients", {"samples": 3}, 0.9, p_c=0.1, images=10)
    for name in (run, running):
        config_path = tmp_path / EXPERIMENT / name / ".hydra" / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["method"]["expected_gradients"].update(reference="split", reference_size=None,
                                                      points="riemann")
        config["data"] = {"name": "folder", "root": "elsewhere", "subset": "tune", "limit": 2,
                          "shard": 0, "num_shards": 1, "batch_size": 8, "num_workers": 0,
                          "split_label": None}
        config_path.write_text(yaml.safe_dump(config))
    selection = check_hardest(tmp_path, folder, model_name="efficientnet_lite0", count=2,
                              experiment=EXPERIMENT, records=baseline_ablation_records(tmp_path),
                              select=select_baselines, cache_name=FEATURELESS_FILE)
    checked = selection.set_index("run")
    assert 0 < checked.loc[run, "max_p_c_hard"] < 1 and 0 < checked.loc[running, "max_p_c_hard"]
    # selected unless the running setting passes on the hardest images too (then it waits)
    assert checked.loc[run, "selected"] == (checked.loc[running, "max_p_c_hard"] >= 0.5)


@pytest.mark.parametrize("running_p_c, running_hard, selected",
                         [(0.1, None, False), (0.1, 0.3, False), (0.9, None, True),
                          (0.1, 0.8, True)])
def test_no_selection_while_a_setting_that_could_win_is_still_running(
        tmp_path, running_p_c, running_hard, selected):
    """An incomplete setting still featureless could be selected when done: the rule
    waits for it; one that already keeps the class, on a recorded image or on the hardest
    images, cannot, and the rule does not wait."""
    chosen = _run(tmp_path, "ig_blur", {"sigma": 20.0}, 0.5, p_c=0.1)
    running = _run(tmp_path, "ig_blur", {"sigma": 40.0}, 0.9, p_c=running_p_c, images=10)
    hard = pd.DataFrame([{"run": chosen, "max_p_c_hard": 0.2},
                         {"run": running, "max_p_c_hard": running_hard}])
    selection = select_baselines(baseline_ablation_records(tmp_path), hard)
    assert selection.set_index("run").loc[chosen, "selected"] == selected

"""Which images a run takes (uni/data/selection.py): a keyed random sample shared by every
experiment and model, and tuning images kept apart from the images that judge."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from tests.conftest import SHARED_DEV
from uni.analysis.selection import held_out_line, read_selection
from uni.config_dir import CONF_DIR
from uni.data import build_dataset
from uni.data.selection import stratified_order, write_selection
from uni.engine.checks import check_config
from uni.engine.identity import data_identity
from uni.engine.job import run_dataset
from uni.errors import ConfigError
from uni.records import SELECTION_FILE

CONFIG = {"input_size": (3, 32, 32), "interpolation": "bilinear", "crop_pct": 1.0,
          "mean": (0.5,) * 3, "std": (0.5,) * 3}


def composed(*overrides: str) -> dict:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)
    experiment = [o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")]
    cfg["experiment"] = experiment[0] if experiment else None
    return cfg


def test_two_experiments_and_models_sample_the_same_images_across_classes():
    if not SHARED_DEV.is_dir():
        pytest.fail(f"the development split is missing: {SHARED_DEV}")
    chosen = []
    for experiment, model in (("faithfulness", "efficientnet_lite0"),
                              ("robustness", "efficientnet_lite2")):
        cfg = composed(f"experiment={experiment}", f"model={model}", "data=folder",
                       f"data.root={SHARED_DEV}", "data.limit=50")
        dataset, _ = run_dataset(cfg["data"], CONFIG)
        chosen.append([(image_id, label) for image_id, _, label in dataset.items])
    assert chosen[0] == chosen[1] and len(chosen[0]) == 50
    # the sorted listing's first 50 are all animals (classes < 398); a sample is not
    assert sum(label >= 398 for _, label in chosen[0]) >= 15
    # the default subset of a folder is the evaluation part: no tuning image in it
    tune = build_dataset("folder", CONFIG, root=SHARED_DEV, subset="tune")
    evaluation = build_dataset("folder", CONFIG, root=SHARED_DEV, subset="eval")
    tune_ids = {i[0] for i in tune.items}
    assert len(tune_ids) == 100 and len(evaluation.items) == 400
    assert not tune_ids & {i[0] for i in evaluation.items}
    assert not tune_ids & {image_id for image_id, _ in chosen[0]}


def test_random_order_is_class_stratified_and_keyed(tmp_path):
    for wnid in ("n01440764", "n01443537", "n01484850"):  # classes 0, 1, 2
        for i in range(4):
            Image.new("RGB", (8, 8)).save(tmp_path / f"{wnid}_{i}.JPEG")
    first = build_dataset("folder", CONFIG, root=tmp_path, sample="random", limit=6)
    # any prefix takes every class once before any class twice
    labels = [item[2] for item in first.items]
    assert sorted(labels[:3]) == [0, 1, 2] and sorted(labels[3:6]) == [0, 1, 2]
    again = build_dataset("folder", CONFIG, root=tmp_path, sample="random", limit=6)
    other = build_dataset("folder", CONFIG, root=tmp_path, sample="random", sample_seed=1,
                          limit=6)
    assert [i[0] for i in again.items] == [i[0] for i in first.items]
    assert [i[0] for i in other.items] != [i[0] for i in first.items]
    # a folder no larger than the tuning subset has no evaluation part: it runs whole
    assert len(build_dataset("folder", CONFIG, root=tmp_path, subset=None).items) == 12
    items = [(f"id{i}", None, -1) for i in range(20)]  # no labels: a keyed shuffle
    assert stratified_order(items, 0, "x") == stratified_order(items[::-1], 0, "x")


def test_tuning_experiments_refuse_the_evaluation_images():
    with pytest.raises(ConfigError, match="data.subset=tune only") as err:
        check_config(composed("experiment=uni_ablation", "data.subset=eval"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not eval"):  # a folder's default subset is eval
        check_config(composed("experiment=calibration", "data.subset=null"))
    check_config(composed("experiment=uni_ablation"))  # its own config: the tuning subset


def test_selection_options_leave_record_keys_unchanged():
    data = composed("data=folder")["data"]
    before = {k: v for k, v in data.items()
              if k not in ("subset", "sample", "sample_seed", "tune_size")}
    assert data_identity(data) == data_identity(before)


def test_report_calls_a_run_held_out_only_without_tuning_images(tmp_path):
    for i in range(6):
        Image.new("RGB", (8, 8)).save(tmp_path / f"n01440764_{i}.JPEG")
    tune = build_dataset("folder", CONFIG, root=tmp_path, subset="tune", tune_size=2)
    evaluation = build_dataset("folder", CONFIG, root=tmp_path, subset="eval", tune_size=2)
    path = write_selection(tmp_path / "run", evaluation)
    assert path.name == SELECTION_FILE
    written = json.loads(path.read_text())
    assert written["subset"] == "eval" and len(written["image_ids"]) == 4
    ids = written["image_ids"]
    assert held_out_line(tmp_path / "run", ids).endswith(": held-out")
    leaked = [*ids, tune.items[0][0]]
    assert "**not held-out**" in held_out_line(tmp_path / "run", leaked)
    assert "not held-out" in held_out_line(tmp_path / "elsewhere", ids)  # no selection file
    for shard in (0, 1):  # shards sharing a run directory each list their own images
        write_selection(tmp_path / "sharded", build_dataset(
            "folder", CONFIG, root=tmp_path, subset="eval", tune_size=2, shard=shard,
            num_shards=2))
    assert sorted(read_selection(tmp_path / "sharded")["image_ids"]) == sorted(ids)


def test_streamed_data_refuses_a_subset_in_one_line():
    with pytest.raises(ConfigError, match="read in its own order"):
        check_config(composed("data=hf", "data.subset=tune"))


def test_a_run_of_the_evaluation_subset_says_how_many_images_it_held_out(tmp_path):
    """A folder of more than 100 images runs its evaluation subset by default: the run's
    last line says the tuning images were left out and how to run every image."""
    from PIL import Image

    from uni.run import run_config

    root = tmp_path / "images"
    root.mkdir()
    for i in range(101):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(root / f"n01440764_{i}.png")
    tiny = ("model=resnet18_random", "data=folder", f"data.root={root}", "data.limit=1",
            "attribution.steps=2", "eval.mufidelity.subsets=4")
    held = run_config(composed(*tiny), tmp_path / "eval")
    every = run_config(composed(*tiny, "data.subset=all"), tmp_path / "all")
    assert held.held_out == 100 and "100 tuning images of the split held out" in held.line()
    assert every.held_out == 0 and "held out" not in every.line()

"""Stored explanations (uni.attribution_store): each (method options, image) explained
once, reused by every metric and rerun; a file counts only for the same bytes."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import uni.engine.loop
from uni.attribution_store import AttributionStore, join, split
from uni.config_dir import CONF_DIR
from uni.methods import explain
from uni.records import RecordStore
from uni.run import run_config as run


def test_put_get_round_trip_and_what_does_not_count(resnet, small_images, tmp_path):
    result = explain(resnet, small_images, None, "uni", steps=2, pgd_steps=2,
                     image_ids=["a", "b", "c"])
    store = AttributionStore(tmp_path)
    for image_id, tensors in zip("abc", split(result)):
        store.put("k", image_id, "d-" + image_id, tensors)
    rows = [store.get("k", i, "d-" + i) for i in "abc"]
    again = join(rows, torch.device("cpu"))
    for name in ("attributions", "baselines", "path_scores"):
        assert torch.equal(getattr(again, name), getattr(result, name))
    assert again.diagnostics.keys() == result.diagnostics.keys()
    for name, value in result.diagnostics.items():
        assert torch.equal(again.diagnostics[name], value.to(again.diagnostics[name].dtype))
    assert store.get("k", "a", "other-bytes") is None  # the file changed since
    assert store.get("k", "a") is not None  # no digest known: any bytes
    assert store.get("other-key", "a") is None
    path = next((tmp_path / "k").glob("*.safetensors"))
    path.write_bytes(path.read_bytes()[:100])  # cut short by a kill
    assert sum(store.get("k", i) is None for i in "abc") == 1


def _cfg(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=[
            "model=resnet18_random", "data=embedded", "data.limit=2", "method=[ig_black,uni]",
            "attribution.steps=2", "method.uni.pgd_steps=2", "eval.mufidelity.subsets=4",
            "eval.mufidelity.grid=3", "eval.deletion.steps=4", "device=cpu", *overrides]),
            resolve=True)


@pytest.fixture
def counted(monkeypatch):
    calls = []

    def counting(model, x, target, method, **options):
        calls.append((method, x.shape[0]))
        return explain(model, x, target, method, **options)

    monkeypatch.setattr(uni.engine.loop, "explain", counting)
    return calls


def test_a_metric_added_to_a_run_reads_the_stored_explanations(tmp_path, counted):
    run(_cfg("eval=[mufidelity]"), tmp_path)
    assert sorted(counted) == [("ig_black", 2), ("uni", 2)]
    first = RecordStore(tmp_path).load()
    counted.clear()
    run(_cfg("eval=[mufidelity,deletion]"), tmp_path)
    assert counted == []  # nothing explained again
    records = RecordStore(tmp_path).load()
    assert set(records["metric"]) == {"mufidelity", "deletion"}
    kept = records[records["metric"] == "mufidelity"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[first.columns], first)
    # the same deletion values as a run that explained itself
    fresh = tmp_path / "fresh"
    run(_cfg("eval=[deletion]", "attribution_store=off"), fresh)
    assert not (fresh / "attributions").exists()
    ours = records[records["metric"] == "deletion"].set_index(["image_id", "method"])["value"]
    theirs = RecordStore(fresh).load().set_index(["image_id", "method"])["value"]
    pd.testing.assert_series_equal(ours.sort_index(), theirs.sort_index())


def test_a_shared_store_serves_another_run_and_other_method_options_explain(tmp_path,
                                                                            counted):
    shared = tmp_path / "store"
    run(_cfg("eval=[mufidelity]", f"attribution_store={shared}"), tmp_path / "a")
    counted.clear()
    run(_cfg("eval=[deletion]", f"attribution_store={shared}"), tmp_path / "b")
    assert counted == []
    run(_cfg("eval=[deletion]", f"attribution_store={shared}", "attribution.steps=3"),
        tmp_path / "c")
    assert sorted(counted) == [("ig_black", 2), ("uni", 2)]
    assert len(list(Path(shared).iterdir())) == 4  # two methods x two option sets

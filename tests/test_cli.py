"""The command line end to end on real photos with the offline model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def uni_run(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uni.run", *overrides], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )


def test_ig_black_mufidelity_on_two_embedded_photos(tmp_path):
    out = tmp_path / "run"
    result = uni_run(
        "model=efficientnet_lite0", "data=embedded", "method=ig_black", "eval=[mufidelity]",
        "data.limit=2", "attribution.steps=4", "eval.mufidelity.subsets=16",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = pd.read_parquet(out / "records.parquet")
    # the images of the keyed random sample, listed in the run directory
    chosen = json.loads((out / "data_selection.json").read_text())["image_ids"]
    assert sorted(records["image_id"]) == sorted(chosen) and len(chosen) == 2
    # the Python quickstart's build_dataset("embedded", ..., limit=2) takes the same photos
    from uni.data import build_dataset

    assert [s.image_id for s in build_dataset("embedded", {"input_size": (3, 32, 32)},
                                              limit=2)] == chosen
    assert set(records["metric"]) == {"mufidelity"} and set(records["method"]) == {"ig_black"}
    assert np.isfinite(records["value"]).all()
    for column in ("split", "model", "config_hash", "seed", "completeness_gap", "score_baseline"):
        assert column in records
    assert (out / ".hydra" / "config.yaml").exists()
    assert "done: 2 images" in result.stdout

    # a rerun of the same config computes nothing and keeps the same records
    again = uni_run(
        "model=efficientnet_lite0", "data=embedded", "method=ig_black", "eval=[mufidelity]",
        "data.limit=2", "attribution.steps=4", "eval.mufidelity.subsets=16",
        f"hydra.run.dir={out}",
    )
    assert again.returncode == 0
    assert "2 image x method pairs already stored" in again.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out / "records.parquet"), records)


def test_help_lists_the_subcommands_and_the_groups():
    result = uni_run("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("uni tables RUN_DIR", "uni report RESULTS_DIR",
                 "method: abs_gradient, adv_baseline, agi, big, blur_ig"):
        assert text in result.stdout


@pytest.mark.parametrize(
    "override, expected",
    [
        ("method=ig_blak", "method='ig_blak' is not one of"),
        ("model=efficentnet_lite0", "model='efficentnet_lite0' is not one of"),
        ("data=imagenett", "data='imagenett' is not one of"),
        ("eval=[mufidelty]", "eval='mufidelty' is not one of"),
    ],
)
def test_misspelt_group_option_is_one_line_error(override, expected):
    result = uni_run(override)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert expected in result.stderr and "ig_black" in uni_run("method=x").stderr


@pytest.mark.parametrize("overrides, key", [
    (["data.limt=3"], "data.limt"),
    (["method=[uni]", "method.uni.epz=3"], "method.uni.epz"),
    (["--multirun", "seed=1,2", "eval.mufidelity.subset=4"], "eval.mufidelity.subset"),
])
def test_misspelt_key_is_one_line_error(tmp_path, overrides, key):
    """A key no config has fails before any work in one line naming it (Hydra's own
    report is six lines); a sweep is checked at its first value."""
    result = uni_run(*overrides, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/s")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{key} is not a setting" in result.stderr and f"+{key}=VALUE" in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["attribution.steps=-3"], "steps=-3"),
        (["method=uni", "method.uni.eps=-0.1"], "eps=-0.1"),
        (["method=ig_blur", "+method.ig_blur.sigmaa=3"],
         "method.ig_blur: unknown option(s) ['sigmaa']; allowed: ["),
        (["attribution.internal_batch_size=0"], "attribution.internal_batch_size=0 must be"),
        (["eval.mufidelity.fraction=1.5"], "fraction=1.5"),
        (["data=folder", "data.root=/nonexistent"], "is not a directory"),
        (["model=timm", "model.name=resnet_does_not_exist"], "is not a timm model"),
        (["output=probability"], "output='probability'"),
        (["runtime.precision=fp8"], "runtime.precision='fp8'"),
        (["+runtime.fold_bn=true"], "unknown option(s) ['fold_bn']"),
        (["method=deeplift", "runtime.compile=true"], "runtime.compile=true"),
    ],
)
def test_bad_value_fails_before_work(tmp_path, overrides, expected):
    result = uni_run(*overrides, "data.limit=1", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "records.parquet").exists()


@pytest.mark.parametrize("override, expected", [
    ("data.limit=abc", "error: data.limit='abc' must be an integer >= 1 or null"),
    ("method.ig_black.steps=4/255", "error: method.ig_black.steps='4/255' must be an integer"),
])
def test_wrong_type_is_one_line_not_a_traceback(tmp_path, override, expected):
    result = uni_run(override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_two_shards_through_submitit_merge_to_the_single_run(tmp_path):
    common = ["model=resnet18_random", "method=[ig_black,ig_uniform]", "eval=[mufidelity]",
              "data.limit=4", "attribution.steps=2", "eval.mufidelity.subsets=4",
              "data.batch_size=1"]
    single = uni_run(*common, f"hydra.run.dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = uni_run(
        "--multirun", "hydra/launcher=local", *common, "data.num_shards=2", "data.shard=0,1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    shards = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "records.parquet").exists())
    assert len(shards) == 2
    sizes = [len(pd.read_parquet(p / "records.parquet")) for p in shards]
    assert all(size > 0 for size in sizes) and sum(sizes) == 8

    from uni.analysis.tables import load_records, pivot, summarise

    merged = load_records(shards).drop(columns=["note"], errors="ignore")
    alone = load_records([tmp_path / "single"]).drop(columns=["note"], errors="ignore")
    pd.testing.assert_frame_equal(merged, alone)
    assert pivot(summarise(merged)).equals(pivot(summarise(alone)))
    tables = subprocess.run(
        [sys.executable, "-m", "uni.run", "tables", *map(str, shards), "--out",
         str(tmp_path / "tables")], cwd=ROOT, capture_output=True, text=True,
    )
    assert tables.returncode == 0 and (tmp_path / "tables" / "summary.md").exists()


def test_all_five_metrics_for_ig_black_and_uni_on_two_embedded_photos(tmp_path):
    out = tmp_path / "run"
    result = uni_run(
        "model=resnet18_random", "data=embedded", "data.limit=2", "method=[ig_black,uni]",
        "eval=[mufidelity,deletion,insertion,robustness,stability]", "attribution.steps=2",
        "method.uni.pgd_steps=2", "eval.mufidelity.subsets=4", "eval.deletion.steps=4",
        "eval.insertion.steps=4", "eval.robustness.attack=[random,topk]",
        "eval.robustness.steps=1", "eval.robustness.k=50", "eval.stability.budgets=[1,2]",
        "eval.stability.reference=4", f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = pd.read_parquet(out / "records.parquet")
    assert set(records["method"]) == {"ig_black", "uni"}
    for method, group in records.groupby("method"):
        metrics = set(group["metric"])
        assert {"mufidelity", "deletion", "insertion"} <= metrics, method
        assert {"robustness_random_spearman", "robustness_topk_intersection"} <= metrics
        assert {"stability_l1@1", "stability_spearman@2", "stability_gap@4"} <= metrics
        assert group["image_id"].nunique() == 2
    scored = records[records["metric"].isin(["mufidelity", "deletion", "insertion"])]
    assert np.isfinite(scored["value"]).all()


def test_adding_a_metric_keeps_the_stored_records_and_adds_only_its_own(tmp_path):
    out = tmp_path / "run"
    common = ("model=efficientnet_lite0", "data=embedded", "method=ig_black", "data.limit=1",
              "attribution.steps=4", "eval.mufidelity.subsets=16", "eval.deletion.steps=5",
              f"hydra.run.dir={out}")
    first = uni_run(*common, "eval=[mufidelity]")
    assert first.returncode == 0, first.stderr[-2000:]
    before = pd.read_parquet(out / "records.parquet")
    second = uni_run(*common, "eval=[mufidelity,deletion]", "eval.batch_size=5")
    assert second.returncode == 0, second.stderr[-2000:]
    after = pd.read_parquet(out / "records.parquet")
    assert set(after["metric"]) == {"mufidelity", "deletion"}
    kept = after[after["metric"] == "mufidelity"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[before.columns], before)  # same key, same value
    assert after.groupby("metric")["config_hash"].nunique().eq(1).all()
    assert after["config_hash"].nunique() == 2
    # one table per metric cell: a third config of MuFidelity in the directory is refused
    third = uni_run(*common, "eval=[mufidelity]", "eval.mufidelity.subsets=8")
    assert third.returncode == 0, third.stderr[-2000:]
    tables = subprocess.run([sys.executable, "-m", "uni.run", "tables", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert tables.returncode != 0
    assert tables.stderr.strip().count("\n") == 0 and "would pool them" in tables.stderr


@pytest.mark.parametrize(("command", "message"), [
    (["-m", "uni.analysis.protocol_sensitivity", "{absent}"], "holds no records.parquet"),
    (["-m", "uni.config_reference", "--write", "{absent}/page.md"], "No such file"),
    (["benchmarks/model_runtime.py", "--model", "no_such_model"], "is not a timm model"),
    (["benchmarks/experiments.py", "--model", "no_such_model"], "Could not find"),
])
def test_the_helper_commands_refuse_bad_input_in_one_line(tmp_path, command, message):
    command = [part.format(absent=tmp_path / "absent") for part in command]
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert message in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "absent").exists()

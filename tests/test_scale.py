"""`uni --plan`'s shard table (uni.scale): wall hours per shard count and device, the
fewest shards within a wall time, and the GPU's figure from a device run's JSON."""

import json

import pytest

from uni.errors import ConfigError
from uni.run import plan_options
from uni.scale import fewest_shards, measured_devices, shard_lines, shard_seconds


def test_the_largest_shard_sets_the_wall_time_and_the_fewest_shards_fit_it():
    assert shard_seconds(2.0, 10.0, images=101, shards=4) == 10 + 26 * 2.0
    # 24 h = 86400 s, less 400 s setup: 43000 images of 2 s per shard
    assert fewest_shards(2.0, 400.0, images=50_000, hours=24) == 2
    assert fewest_shards(2.0, 400.0, images=43_000, hours=24) == 1
    assert fewest_shards(100.0, 0.0, images=10, hours=0.01) is None  # 36 s < one image


def _device_run(path, seconds, dry=False, status="ok"):
    path.write_text(json.dumps({
        "dry": dry, "environment": {"gpu": "NVIDIA H200"},
        "images_per_hour": {"resnet50": {"status": status, "seconds_per_image": seconds}}}))


def test_gpu_rows_come_from_finished_non_dry_device_runs(tmp_path):
    _device_run(tmp_path / "device-h200.json", 0.5)
    _device_run(tmp_path / "device-dry.json", 9.0, dry=True)
    _device_run(tmp_path / "device-old.json", 7.0, status="timeout")
    found = measured_devices("faithfulness", "resnet50", tmp_path)
    assert list(found.values()) == [0.5] and "NVIDIA H200" in next(iter(found))
    assert measured_devices("robustness", "resnet50", tmp_path) == {}
    lines = shard_lines(60.0, 0.0, "cpu", 50_000, "faithfulness", "resnet50", 24, tmp_path)
    fits = [line for line in lines if "fewest shards" in line]
    # CPU: 1440 images per 24 h shard -> 35; GPU: 172800 -> 1
    assert fits[0].endswith(": 35 shard(s)") and fits[1].endswith(": 1 shard(s)")
    assert not any("pending" in line for line in lines)
    cpu_only = shard_lines(60.0, 0.0, "cpu", 50_000, "faithfulness", "vit_base_patch16_224",
                           24, tmp_path)
    assert "pending" in cpu_only[-1]


def test_plan_options_are_taken_out_of_the_overrides_and_checked():
    rest = plan_options(["uni", "--plan-images=50000", "experiment=faithfulness",
                         "--plan-hours=4"])
    assert rest == ["uni", "experiment=faithfulness"]
    with pytest.raises(ConfigError, match="--plan-images"):
        plan_options(["--plan-images=lots"])

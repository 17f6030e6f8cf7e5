"""Batch sizes per device (uni.device_defaults, `batch_sizes` in conf/config.yaml):
`device` picks them, an explicit setting wins, and the records' keys do not move."""

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.config_dir import CONF_DIR
from uni.engine.identity import data_identity, record_keys


def _cfg(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["method=[ig_black,uni]", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def _sizes(cfg):
    return (cfg["attribution"]["internal_batch_size"], cfg["method"]["uni"]["internal_batch_size"],
            cfg["eval"]["batch_size"])


def test_the_device_picks_its_batch_sizes_and_an_explicit_one_wins():
    sizes = _cfg()["batch_sizes"]
    cpu = (sizes["attribution"]["cpu"],) * 2 + (sizes["eval"]["cpu"],)
    cuda = (sizes["attribution"]["cuda"],) * 2 + (sizes["eval"]["cuda"],)
    assert cpu == (4, 4, 4)  # the CPU defaults measured before (model_runtime.py)
    assert _sizes(_cfg("device=cpu")) == cpu
    assert _sizes(_cfg("device=cuda")) == _sizes(_cfg("device=cuda:1")) == cuda
    assert _sizes(_cfg("device=auto")) == (cuda if torch.cuda.is_available() else cpu)
    assert _sizes(_cfg("device=cuda", "attribution.internal_batch_size=7",
                       "eval.batch_size=9")) == (7, 7, 9)


def test_batch_sizes_change_no_record_key():
    keys = [record_keys(cfg, data_identity(cfg["data"]))
            for cfg in (_cfg("device=cpu"), _cfg("device=cuda"))]
    assert keys[0] == keys[1]

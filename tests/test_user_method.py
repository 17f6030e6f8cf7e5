"""A user's own method in one file: its module registers it, its YAML configures it, and
the command line runs it from a directory of its own (``imports`` and Hydra's search
path), without an edit of the package."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uni.errors import ConfigError
from uni.run import import_modules

ROOT = Path(__file__).resolve().parents[1]

TOY_METHOD = '''"""A toy attribution method: the image, scaled, as its own attribution (and
the scale as a per-image diagnostic, which the records keep)."""
import torch

from uni.methods import register_method
from uni.methods.path import Attribution


def toy(model, x, target, *, gain: float = 1.0, output="prob", internal_batch_size=4,
        image_ids=(), seed=0):
    return Attribution(gain * x.detach().clone(),
                       diagnostics={"toy_gain": torch.full((len(x),), float(gain))})


register_method("toy", toy, straight_line=False)
'''
TOY_CONFIG = "# @package method.toy\ngain: 2.0\n"


def uni_run(*overrides: str, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "uni.run", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_method_in_one_file_runs_from_the_command_line(tmp_path):
    plugin = tmp_path / "plugin"
    (plugin / "method").mkdir(parents=True)
    (plugin / "toy_method.py").write_text(TOY_METHOD)
    (plugin / "method" / "toy.yaml").write_text(TOY_CONFIG)
    out = tmp_path / "run"
    common = ["model=efficientnet_lite0", "data=embedded", "data.limit=1", "eval=[mufidelity]",
              "eval.mufidelity.subsets=8", "attribution.steps=2", f"hydra.run.dir={out}"]
    result = uni_run(*common, "method=[ig_black,toy]", "imports=[toy_method]",
                     f"hydra.searchpath=[file://{plugin}]", pythonpath=plugin)
    assert result.returncode == 0, result.stderr[-2000:]
    records = pd.read_parquet(out / "records.parquet")
    toy = records[records["method"] == "toy"]
    assert list(toy["metric"]) == ["mufidelity"] and np.isfinite(toy["value"]).all()
    assert (toy["toy_gain"] == 2.0).all()  # its YAML's gain reached the method
    # the catalog holds no entry for it: listed after the package's methods
    table = result.stdout[result.stdout.index("per method x metric"):]
    assert table.index("ig_black") < table.index("toy")

    # ``imports`` enters no record key: the same ig_black entry without it is all stored
    again = uni_run(*common, "method=[ig_black]", pythonpath=plugin)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 image x method pairs already stored" in again.stdout


def test_a_module_that_cannot_be_imported_is_one_line():
    with pytest.raises(ConfigError, match=r"^imports: cannot import 'no_such_module_here' "):
        import_modules(["no_such_module_here"])
    with pytest.raises(ConfigError, match="must be a list of module names"):
        import_modules("toy_method")

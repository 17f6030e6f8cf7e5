"""The package installs with its configs: a wheel holds uni/conf/, and `python -m uni.run`
from that wheel composes the config from any directory (issue 13). Offline: the wheel is
built from a copy of the sources without build isolation (nothing is downloaded or
installed; the wheel is unzipped and put first on PYTHONPATH)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.packaging


def _build_wheel(tmp_path: Path) -> Path:
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "uni", source / "uni",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = wheels.glob("uni_bench-*.whl")
    return wheel


def test_wheel_holds_the_configs_and_runs_from_anywhere(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        site = tmp_path / "site"
        archive.extractall(site)
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "uni" / "conf").rglob("*.yaml")}
    assert "uni/conf/config.yaml" in configs and "uni/conf/method/uni.yaml" in configs
    assert configs <= names, sorted(configs - names)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import uni.run; print(uni.run.CONF_DIR)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert where.stdout.strip() == str(site / "uni" / "conf"), where.stderr[-2000:]
    result = subprocess.run(
        [sys.executable, "-m", "uni.run", "--cfg", "job", "method=[ig_black,uni]"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("name: efficientnet_lite0", "ig_black:", "unlearn_step: normalised",
                 "mufidelity:"):
        assert text in result.stdout
    assert not list(elsewhere.iterdir())  # --cfg job runs nothing

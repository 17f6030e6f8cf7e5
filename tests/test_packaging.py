"""The configs ship with the package (issues 13 and 29): ``conf/`` at the top of the repository
installs as ``uni/conf``. A wheel built from a copy of the sources installs in a fresh venv, and
``python -m uni.run`` run by that venv from another directory composes
``experiment=faithfulness`` from the installed configs, as an editable install does from
``conf/`` itself. Offline: no build isolation, no index; the fresh venvs see the running
interpreter's packages (torch, hydra, ...) through a ``.pth`` file, after their own."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from setuptools.config.pyprojecttoml import read_configuration

ROOT = Path(__file__).resolve().parents[1]
# the source tree a build needs; a copy, so that no build/ or *.egg-info lands in the checkout
SOURCES = ("pyproject.toml", "README.md", "uni", "conf")
# no PYTHONPATH: the venv must import its own uni, not this checkout's
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "OMP_NUM_THREADS": "1",
       "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
# where uni comes from, and the job config it composes, as JSON on the last line
PROBE = ("import json, sys, uni.config_dir as c; from hydra import compose, initialize_config_dir;"
         " from omegaconf import OmegaConf\n"
         "with initialize_config_dir(str(c.CONF_DIR), version_base='1.3'):\n"
         "    cfg = compose('config', overrides=sys.argv[1:])\n"
         "print(json.dumps({'uni': c.__file__, 'conf': str(c.CONF_DIR),"
         " 'cfg': OmegaConf.to_container(cfg)}))")

pytestmark = pytest.mark.packaging


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def _copy_sources(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, source / name)
    return source


def _fresh_venv(path: Path) -> tuple[Path, Path]:
    """A venv without pip whose site-packages come first, then the running interpreter's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    python = path / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True,
        env=ENV).strip())
    # plain path lines: the running interpreter's .pth files (its own editable uni) stay out
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python, purelib


def _probe(python: Path, cwd: Path, *overrides: str) -> dict:
    result = subprocess.run([python, "-c", PROBE, *overrides], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load(result.stdout.strip().splitlines()[-1])


def _checkout_composes(*overrides: str) -> dict:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)))


def test_wheel_ships_conf_and_composes_faithfulness_from_another_directory(tmp_path):
    source = _copy_sources(tmp_path)
    wheels = tmp_path / "wheels"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir", "-q",
         "-w", str(wheels), str(source), cwd=tmp_path)
    (wheel,) = wheels.glob("uni_bench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    configs = {f"uni/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "uni").rglob("*.py")}
    assert "uni/conf/experiment/faithfulness.yaml" in configs
    assert configs <= names, sorted(configs - names)
    assert modules <= names, f"packages missing from pyproject.toml: {sorted(modules - names)}"
    groups = {"uni." + d.relative_to(ROOT).as_posix().replace("/", ".")
              for d in [ROOT / "conf", *(ROOT / "conf").rglob("*")] if d.is_dir()}
    listed = set(read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"])
    assert groups <= listed, f"config folders missing from pyproject.toml: {groups - listed}"

    python, purelib = _fresh_venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "--no-cache-dir", "-q",
         str(wheel), cwd=tmp_path)
    shutil.rmtree(source)  # nothing of the sources left to import from
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _probe(python, elsewhere, "experiment=faithfulness")
    assert probe["uni"] == str(purelib / "uni" / "config_dir.py")
    assert probe["conf"] == str(purelib / "uni" / "conf")
    expected = _checkout_composes("experiment=faithfulness")
    assert {"uni", "uni_paper", "ig_black", "trivial_constant"} <= set(probe["cfg"]["method"])
    assert {"mufidelity", "deletion", "insertion"} <= set(probe["cfg"]["eval"])
    assert probe["cfg"] == expected

    # the console script of the installed wheel: the same config, no run, nothing written
    result = subprocess.run([python, "-m", "uni.run", "--cfg", "job", "experiment=faithfulness"],
                            cwd=elsewhere, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert yaml.safe_load(result.stdout)["method"].keys() == expected["method"].keys()
    assert not list(elsewhere.iterdir())


def test_editable_install_composes_from_the_top_level_conf(tmp_path):
    source = _copy_sources(tmp_path)
    python, purelib = _fresh_venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "-q", "-e", str(source), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _probe(python, elsewhere, "experiment=faithfulness")
    assert probe["uni"] == str(source / "uni" / "config_dir.py")
    assert probe["conf"] == str(source / "conf")
    assert probe["cfg"] == _checkout_composes("experiment=faithfulness")


def test_the_checkout_has_one_config_tree_at_the_top_level():
    from uni.config_dir import CONF_DIR

    assert CONF_DIR == ROOT / "conf"
    assert not (ROOT / "uni" / "conf").exists()  # it would shadow conf/ (uni/config_dir.py)

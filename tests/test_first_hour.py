"""What a new user meets in the first hour (issue 28): a run ends with its table, `uni
report` takes any run, nothing is written unless asked, offline hub models fail in one
line, sweeps are named by what varies and their jobs' progress is shown."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from uni.analysis.commands import report_main, tables_main
from uni.data import build_dataset
from uni.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=resnet18_random", "data.limit=2", "attribution.steps=2",
        "eval.mufidelity.subsets=4"]


def uni(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uni.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def adhoc_run(tmp_path_factory):
    """An ad-hoc run (no experiment) of two methods, one batch per image: DeepLIFT makes
    Captum warn on every batch."""
    out = tmp_path_factory.mktemp("adhoc") / "run"
    result = uni(*TINY, "method=[ig_black,deeplift]", "eval=[mufidelity,deletion]",
                 "data.batch_size=1", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_a_run_ends_with_its_table_and_logs_library_warnings_once(adhoc_run):
    out, result = adhoc_run
    last = result.stdout.strip().splitlines()[-4:]
    assert last[0].split("|")[2].strip().startswith("mufidelity")  # the header row
    assert [line.split("|")[1].strip() for line in last[2:]] == ["ig_black", "deeplift"]
    assert all("[" in cell and "(2)" in cell for line in last[2:]
               for cell in line.split("|")[2:4])  # mean [interval] (n)
    log = (out / "run.log").read_text()
    assert "done: 2 images" in log
    assert log.count("did not already require gradients") == 1  # two batches, logged once
    assert "UserWarning" not in result.stderr  # not across the progress bar


def test_report_of_an_adhoc_run_has_a_table_statistics_and_figures(adhoc_run, tmp_path,
                                                                   monkeypatch, capsys):
    out, _ = adhoc_run
    monkeypatch.chdir(tmp_path)
    report_main([str(out)])  # returns: exit status 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert "| deeplift |" in printed[-2] and printed[-1].startswith(f"report: {out / 'REPORT.md'}")
    text = (out / "REPORT.md").read_text()
    assert "| ig_black |" in text and "mufidelity ↑" in text
    assert "Paired differences to ig_black" in text
    figures = [line for line in text.splitlines() if line.startswith("![")]
    assert figures and all((out / line.split("(")[1].rstrip(")")).exists() for line in figures)
    kept = torch.load(out / "figures.pt", weights_only=True)  # ad-hoc runs keep figures
    assert len(set(kept["image_ids"])) == 2  # the run's two photos (a keyed random pick)
    assert all(i.startswith("skimage/") for i in kept["image_ids"])
    assert set(kept["targets"]) == {""} and kept["probabilities"][""].shape == (2,)
    assert not list(tmp_path.iterdir())


def test_tables_and_plan_write_nothing(adhoc_run, tmp_path, monkeypatch, capsys):
    out, _ = adhoc_run
    monkeypatch.chdir(tmp_path)
    tables_main([str(out)])
    assert "| deeplift |" in capsys.readouterr().out
    plan = uni("--plan", *TINY, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "estimated wall time" in plan.stdout
    assert not list(tmp_path.iterdir())


def _no_network(monkeypatch, tmp_path):
    """A hub that refuses connections and an empty cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def test_hub_model_offline_is_one_line_naming_the_offline_models(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path),
           "TORCH_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    result = uni("model=resnet50", "data.limit=1", f"hydra.run.dir={tmp_path / 'run'}",
                 env=env)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "efficientnet_lite0" in result.stderr and "model.checkpoint=PATH" in result.stderr


def test_hub_offline_mode_and_hub_datasets_fail_before_any_download(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from uni.models import load_model

    _no_network(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="cannot reach 127.0.0.1") as err:
        build_dataset("hf", {"input_size": (3, 32, 32)}, path="imagenet-1k", limit=1)
    assert "data.root=PATH" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set.*model.checkpoint=PATH"):
        load_model("vit_tiny_patch16_224")


def test_folder_data_needs_its_root_and_no_config_ships_one():
    with pytest.raises(ConfigError, match=r"pass data.root=PATH"):
        build_dataset("folder", {"input_size": (3, 32, 32)}, root=None)
    assert not [p for p in (ROOT / "conf").rglob("*.yaml")
                if any("shared/data" in line.split("#")[0] for line in p.read_text().splitlines())]


def test_sweep_directories_and_table_rows_are_named_by_what_varies(tmp_path, capsys):
    from uni.run import sweep_subdir_overrides

    sweep = tmp_path / "sweep"
    result = uni("--multirun", *TINY[:2], "data.limit=1", "method=ig_black",
                 "attribution.steps=2,3", "eval.mufidelity.subsets=4",
                 f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        "attribution.steps=2", "attribution.steps=3"]
    tables_main([str(sweep), "--by-run"])
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["attribution.steps=2", "attribution.steps=3"]
    # the Makefile's own names and the experiments that name their runs are kept
    assert sweep_subdir_overrides(["-m", "a=1,2", "hydra.sweep.subdir=x"]) == []
    assert sweep_subdir_overrides(["-m", "experiment=uni_ablation", "method.uni.eps=1,2"]) == []
    assert sweep_subdir_overrides(["a=1,2"]) == []  # not a sweep


def test_sweep_progress_shows_each_jobs_progress_and_last_lines(tmp_path, capsys):
    from omegaconf import OmegaConf

    from uni.sweep_progress import SweepProgress

    jobs = tmp_path / ".submitit"
    for job, done in (("11", 1), ("12", 3)):
        (jobs / job).mkdir(parents=True)
        (jobs / job / f"{job}_0_log.err").write_text(
            f"\reps=0.{job}: m x 1 methods:   0%|   | 0/3 [00:00<?, ?img/s]"
            f"\reps=0.{job}: m x 1 methods:  33%|#  | {done}/3 [00:01<00:02, 1img/s]")
        (jobs / job / f"{job}_0_log.out").write_text(f"submitit INFO x\ndone: job {job}\n")
    config = OmegaConf.create({"hydra": {"launcher": {
        "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
        "submitit_folder": f"{jobs}/%j"}}})
    progress = SweepProgress()
    progress.on_multirun_start(config)
    progress.on_multirun_end(config)
    out = capsys.readouterr().out
    assert "[job 11] eps=0.11: m x 1 methods: 1/3 images" in out
    assert "[job 12] eps=0.12: m x 1 methods: 3/3 images" in out
    assert "done: job 12" in out and "submitit INFO" not in out


def test_claims_table_names_protocols_briefly_with_a_legend(tmp_path):
    from tests.test_stats import _records, _run
    from uni.analysis.report import build_report

    rows = _records({"uni": 0.3, "ig_black": 0.0}, n=8).assign(
        split="dev", config_hash="h", seed=0)
    _run(tmp_path / "faithfulness", rows.to_dict("records"),
         {"eval": {"mufidelity": {"metric": "mufidelity", "subsets": 64}}, "output": "prob"})
    claims = build_report(tmp_path).read_text().split("\n## ")[1]
    row = next(line for line in claims.splitlines() if line.startswith("| MuFidelity"))
    assert "| P1 " in row and "subsets" not in row
    assert "- P1: faithfulness (`faithfulness`): subsets=64 output=prob" in claims



def test_plan_counts_figure_work_for_the_figure_images_only():
    from uni.engine.plan import Plan

    plan = Plan(experiment="run", images=100, all_images=100, num_shards=1,
                calibration_images=1, stages={"explain/ig_black": 1.0, "figures": 10.0},
                forward_rows=0, gradient_rows=0, setup_seconds=5.0, device="cpu",
                figure_images=2)
    assert plan.estimate_seconds == 5.0 + 100 * 1.0 + 2 * 10.0

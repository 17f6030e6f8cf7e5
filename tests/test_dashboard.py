"""wandb dashboards (offline): a run's summary keys, tables and figures, its group and
job type, and ``uni report RESULTS --wandb``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from uni.analysis.dashboard import report_html, summary_values
from uni.analysis.tables import summarise
from uni.loggers import make_logger

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb offline, its own files under ``tmp_path`` (nothing in the home directory)."""
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR"):
        (tmp_path / f"wandb_{name.lower()}").mkdir()
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / f"wandb_{name.lower()}"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def only_run(run_dir: Path) -> Path:
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def uni_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uni.run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_faithfulness_run_and_its_report_on_wandb(tmp_path, offline_wandb):
    """A run leaves a summary key per method x metric, its tables and figures; ``uni
    report --wandb`` then pushes the report's tables, figures and REPORT (one run of the
    experiment serves both: each is a model load and a wandb start)."""
    results = tmp_path / "results"
    run_dir = results / "faithfulness"
    result = uni_command(
        "experiment=faithfulness", "profile=quick", "data.limit=2", "model=resnet18_random",
        "method=[ig_black,uni]", "attribution.steps=2", "eval.mufidelity.subsets=4",
        "logger=wandb", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    files = only_run(run_dir) / "files"
    summary = json.loads((files / "wandb-summary.json").read_text())
    records = pd.read_parquet(run_dir / "records.parquet")
    for method in ("ig_black", "uni"):
        for metric in ("mufidelity", "deletion", "insertion", "insertion-deletion"):
            key = f"{metric}/{method}"
            assert summary[f"{key}/low"] <= summary[key] <= summary[f"{key}/high"]
            assert summary[f"{key}/n"] == 2
        mine = records[(records["method"] == method) & (records["metric"] == "mufidelity")]
        assert summary[f"mufidelity/{method}"] == pytest.approx(mine["value"].mean())
    images = sorted(p.name for p in (files / "media" / "images" / "figures").glob("*.png"))
    assert any(name.startswith("attribution_grid") for name in images), images
    assert len(images) == 4  # grid, F_c along the path, deletion and insertion curves
    tables = {p.name.rsplit("_", 2)[0] for p in (files / "media" / "table").glob("*.json")}
    assert tables == {"records", "summary", "summary_table"}
    table = json.loads(next((files / "media" / "table").glob("records_*.json")).read_text())
    assert "image_id" in table["columns"] and len(table["data"]) == len(records)

    result = uni_command("report", str(results), "--wandb")
    assert result.returncode == 0, result.stderr[-2000:]
    files = only_run(results) / "files"
    tables = {p.name.rsplit("_", 2)[0] for p in (files / "media" / "table" / "tables").glob("*")}
    assert tables == {p.stem for p in (results / "tables").glob("*.csv")} and tables
    figures = list((files / "media" / "images" / "figures").glob("attribution_grid_*.png"))
    assert len(figures) == 1
    page = next((files / "media" / "html").glob("REPORT_*.html")).read_text()
    assert "Faithfulness: MuFidelity" in page and "data:image/png;base64," in page
    summary = json.loads((files / "wandb-summary.json").read_text())
    assert summary["REPORT"]["_type"] == "html-file"


def test_runs_are_grouped_by_the_directory_holding_them_and_typed_by_experiment(
        tmp_path, offline_wandb, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = make_logger({"name": "wandb", "project": "uni-bench"},
                         {"experiment": "robustness"}, tmp_path / "sweep" / "3")
    assert (logger.run.group, logger.run.job_type) == ("sweep", "robustness")
    logger.finish()
    chosen = make_logger({"name": "wandb", "group": "mine", "job_type": "probe"},
                         {"experiment": "robustness"}, tmp_path / "elsewhere" / "run")
    assert (chosen.run.group, chosen.run.job_type) == ("mine", "probe")
    chosen.finish()


def test_summary_keys_leave_out_cells_without_a_finite_value():
    records = pd.DataFrame({
        "image_id": ["a", "b", "a", "b"], "model": "m", "method": ["uni", "uni", "x", "x"],
        "metric": "mufidelity", "value": [0.2, 0.4, float("nan"), float("nan")]})
    values = summary_values(summarise(records))
    assert values["mufidelity/uni"] == pytest.approx(0.3)
    assert values["mufidelity/uni/n"] == 2
    assert not any(key.startswith("mufidelity/x") for key in values)


def test_report_html_inlines_its_figures_and_escapes_its_text(tmp_path):
    (tmp_path / "figures").mkdir()
    png = b"\x89PNG fake"
    (tmp_path / "figures" / "grid.png").write_bytes(png)
    report = tmp_path / "REPORT.md"
    report.write_text("# a <b> report\n\n![grid](figures/grid.png)\n![gone](figures/no.png)\n")
    page = report_html(report)
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert page.count("<img") == 1 and f"base64,{base64.b64encode(png).decode()}" in page
    assert "![gone](figures/no.png)" in page  # a missing figure stays as written


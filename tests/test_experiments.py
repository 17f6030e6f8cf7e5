"""Experiments as a registry (issue 29): a spec per experiment gives the report its claims
and its section; adding one is its YAML and its spec; a run of an experiment nobody
registered is reported as a generic run, never dropped; the analysis imports no torch."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from tests.test_stats import _records, _run
from uni.analysis.report import build_report
from uni.config_dir import CONF_DIR
from uni.errors import ConfigError
from uni.experiments import EXPERIMENTS, Experiment, experiment_of, register_experiment

ROOT = Path(__file__).resolve().parents[1]

TOY_YAML = """\
# @package _global_
# a toy experiment: two methods scored by deletion on two images
defaults:
  - override /method: [ig_black, gradient]
  - override /eval: [deletion]
data:
  limit: 2
"""

TOY_SPEC = '''\
from uni.analysis.sections import section, table_block
from uni.analysis.tables import summarise
from uni.experiments import Experiment, register_experiment


def report_section(ctx):
    return section("Toy: deletion per method", [
        *ctx.run_lines, *table_block(summarise(ctx.records), ctx.out, "toy")])


register_experiment(Experiment(name="toy", title="a toy", order=15, section=report_section))
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy experiment's YAML (in a config directory of its own) and its spec (a
    module that registers itself when imported), unregistered afterwards."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "toy.yaml").write_text(TOY_YAML)
    (tmp_path / "toy_experiment.py").write_text(TOY_SPEC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_experiment", raising=False)
    import toy_experiment  # noqa: F401  registers "toy"

    yield tmp_path
    del EXPERIMENTS["toy"]


def test_a_registered_toy_experiment_has_its_section_in_the_report(toy):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"hydra.searchpath=[file://{toy / 'conf'}]", "experiment=toy"])
    methods = list(cfg.method)
    metrics = [e.metric for e in cfg.eval.values() if isinstance(e, DictConfig) and "metric" in e]
    assert methods == ["ig_black", "gradient"] and metrics == ["deletion"]
    records = _records({"ig_black": 0.0, "gradient": 0.2}, "deletion", n=cfg.data.limit)
    results = toy / "results"
    _run(results / "toy", records.assign(split="val", config_hash="h", seed=0)
         .to_dict("records"), OmegaConf.to_container(cfg.eval))
    faithfulness = _records({"uni": 0.3, "ig_black": 0.0}, n=6)
    _run(results / "faithfulness", faithfulness.assign(split="val", config_hash="h", seed=0)
         .to_dict("records"))

    report = build_report(results).read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    # its order (15) puts it after faithfulness (10) and before robustness's place (20)
    assert headings.index("## Toy: deletion per method") > headings.index(
        "## Faithfulness: MuFidelity (model x method)")
    toy_section = report.split("## Toy: deletion per method")[1].split("\n## ")[0]
    assert "Run `toy`: model m; data split val; 2 images" in toy_section
    assert "| gradient |" in toy_section and (results / "tables" / "toy.csv").exists()
    assert "no registered experiment" not in report  # the toy is no generic run


def test_a_run_of_an_unregistered_experiment_is_a_generic_section(tmp_path):
    rows = _records({"uni": 0.3, "ig_black": 0.0}, n=6).assign(split="val", config_hash="h",
                                                                seed=0)
    _run(tmp_path / "faithfulness", rows.to_dict("records"))
    mystery = _records({"uni": 0.1, "ig_blur": 0.0}, "insertion", n=5).assign(
        split="val", config_hash="h", seed=0)
    _run(tmp_path / "mystery", mystery.to_dict("records"))
    for sweep in ("mystery_sweep", "topk_calibration"):  # unregistered; without a section
        for k in (1, 2):  # each setting its own config: never pooled into one cell
            _run(tmp_path / sweep / f"k={k}", mystery.assign(
                value=mystery["value"] + k, config_hash=f"h{k}").to_dict("records"))

    report = build_report(tmp_path).read_text()
    assert "## Runs `mystery` (no registered experiment)" in report
    mine = report.split("## Runs `mystery` (no registered experiment)")[1].split("\n## ")[0]
    assert "### Method x metric" in mine and "| ig_blur |" in mine and "insertion" in mine
    assert "Paired differences to UNI" in mine
    assert (tmp_path / "tables" / "mystery_summary.csv").exists()
    swept = report.split("## Runs `mystery_sweep` (no registered experiment)")[1]
    assert "Paired statistics (k=1)" in swept and "Paired statistics (k=2)" in swept
    assert "## Runs `topk_calibration` (Top-k attack: surrogate steps" in report
    # the claims are the registered experiments' alone: faithfulness's four, three not run
    claims = [line for line in report.split("\n## ")[1].splitlines()
              if line.startswith("| ") and not line.startswith("| claim")]
    assert len(claims) == 4 + 3 and "mystery" not in report.split("\n## ")[1]


def test_directories_belong_to_the_longest_registered_name_and_its_joins():
    assert experiment_of("faithfulness").name == "faithfulness"
    assert experiment_of("faithfulness-efficientnet_lite1").name == "faithfulness"
    assert experiment_of("robustness_sweep").name == "robustness"  # joins robustness
    assert experiment_of("robustness-sweep").name == "robustness"
    assert experiment_of("uni_ablation").name == "uni_ablation"
    assert experiment_of("faithfulnessy") is None and experiment_of("toy") is None


def test_every_experiment_config_has_a_spec_and_every_spec_a_config():
    configs = {p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")}
    assert configs == set(EXPERIMENTS)
    reproduced = {e.name for e in EXPERIMENTS.values() if e.reproduce}
    assert reproduced == {"faithfulness", "robustness", "stability", "imagenet_c"}
    assert all(EXPERIMENTS[e].claims is not None for e in reproduced)


def test_an_experiment_registered_twice_is_refused():
    with pytest.raises(ConfigError, match="registered twice"):
        register_experiment(Experiment(name="faithfulness", title="again", order=0))


def test_the_report_keeps_the_claims_of_a_results_directory(tmp_path):
    """The Claims table of a make-reproduce layout lists the four paper experiments in
    their order, a missing one as not run, whatever other directories sit beside them."""
    rows = _records({"uni": 0.3, "ig_black": 0.0}, n=6).assign(split="val", config_hash="h",
                                                                seed=0)
    _run(tmp_path / "faithfulness", rows.to_dict("records"))
    stability = pd.concat([_records({"uni": 0.0, "ig_black": 0.1}, f"stability_l1@{b}", n=5)
                           for b in (1, 2)]).assign(split="val", config_hash="h", seed=0)
    _run(tmp_path / "stability", stability.to_dict("records"))
    _run(tmp_path / "seeds" / "faithfulness-seed1", rows.assign(seed=1).to_dict("records"))
    report = build_report(tmp_path).read_text()
    claims = [line.split("|")[1].strip() for line in report.split("\n## ")[1].splitlines()
              if line.startswith("| ") and not line.startswith("| claim")]
    assert claims[0] == "MuFidelity: UNI highest"
    assert claims.index("robustness: not run") < claims.index(
        "Riemann stability, B=1: UNI's L1 to the reference lowest") < claims.index(
        "imagenet_c: not run")
    assert "Not run yet (no records): robustness, imagenet_c." in report
    # the seed reruns are the seed spread's, never a run of their own
    assert "## Seed spread" in report and "## Runs `seeds`" not in report


def test_the_analysis_package_the_report_and_the_experiments_import_neither_torch_nor_timm():
    code = textwrap.dedent("""
        import sys
        import uni.analysis
        import uni.analysis.commands, uni.analysis.dashboard, uni.analysis.report, uni.experiments
        loaded = [m for m in ("torch", "timm") if m in sys.modules]
        assert not loaded, loaded
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_budget_sweeps_l2_budget_is_unis_ball():
    """robustness_sweep restates UNI's eps (a record key must not follow a later change of
    UNI's default silently): this fails when one moves without the other."""
    from tests.test_selection import composed

    cfg = composed("experiment=robustness_sweep")
    assert cfg["eval"]["robustness_l2"]["eps"] == [cfg["method"]["uni"]["eps"]]
    assert cfg["eval"]["robustness_l2"]["norm"] == cfg["method"]["uni"]["norm"] == "l2"
    # and every other option is the L-inf budgets', under each profile
    for profile in ("dev", "quick", "paper"):
        cfg = composed("experiment=robustness_sweep", f"profile={profile}")
        linf, l2 = cfg["eval"]["robustness"], cfg["eval"]["robustness_l2"]
        assert {k: v for k, v in l2.items() if k not in ("eps", "norm")} == \
            {k: v for k, v in linf.items() if k not in ("eps", "norm")}, profile


def test_the_papers_uni_is_a_row_of_every_experiment():
    """Issue 31: `uni_paper` beside `uni` in every table the development REPORT has."""
    from tests.test_selection import composed

    for experiment in ("faithfulness", "robustness", "robustness_sweep", "stability",
                       "imagenet_c", "protocol_sensitivity", "sanity"):
        methods = composed(f"experiment={experiment}")["method"]
        assert {"uni", "uni_paper"} <= set(methods), experiment


@pytest.mark.parametrize("experiment", ["robustness", "robustness_sweep"])
def test_the_noise_floor_compares_the_maps_the_attacks_compare(experiment):
    """The floor bounds the robustness scores only on the same maps and k."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for compare, k in (("magnitude", 1000), ("signed", 500)):
            cfg = compose("config", overrides=[f"experiment={experiment}",
                                               f"eval.robustness.compare={compare}",
                                               f"eval.robustness.k={k}"])
            floor = OmegaConf.to_container(cfg.eval.noise_floor, resolve=True)
            assert (floor["compare"], floor["k"]) == (compare, k)

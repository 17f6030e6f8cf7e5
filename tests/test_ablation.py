"""The UNI ablation's table and figures from run directories (synthetic records)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from uni.analysis.ablation import PAPER_CELL, ablation_records, setting, write_ablation
from uni.methods.unlearning import PAPER
from uni.records import RecordStore


def _run(root, name, options, value, images=4):
    run_dir = root / "uni_ablation" / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"method": {"uni": options}}))
    rows = []
    for i in range(images):
        for metric, v in (("mufidelity", value + 0.01 * i), ("deletion", 0.2),
                          ("insertion", 0.5), ("noise_floor_intersection", value)):
            rows.append({"image_id": f"img{i}", "split": "dev", "model": "m", "method": "uni",
                         "metric": metric, "value": v, "config_hash": name, "seed": 0,
                         "kl": 0.1 * i, "p_c_baseline": 0.2})
    RecordStore(run_dir).write(rows)


CENTRE = {"unlearn_step": "normalised", "unlearn_until": None, "pgd_steps": 20,
          "pgd_update": "adam", "pgd_schedule": "constant"}


def test_setting_labels_variants_and_matches_l2_radii():
    l2 = setting({**CENTRE, "eps": 3.0431, "norm": "l2"})
    assert l2["eps_255"] == pytest.approx(4.0, abs=0.01)  # 2 eps / sqrt(3*224*224) * 255
    assert setting({**CENTRE, "eps": 4 / 255, "norm": "linf"})["eps_255"] == 4.0
    assert setting({**CENTRE, "eps": 0.1, "norm": "linf", "unlearn_step": "fixed"})[
        "variant"] == "fixed"
    assert setting({**CENTRE, "eps": 0.1, "norm": "linf", "unlearn_until": 0.1})[
        "variant"] == "threshold"
    # the paper's Algorithm 1 is its own cell, in either KL direction
    paper = setting({**PAPER, "kl_direction": "reverse"})
    assert {k: paper[k] for k in PAPER_CELL} == PAPER_CELL
    assert paper["kl_direction"] == "reverse" and setting(PAPER)["kl_direction"] == "forward"


def test_ablation_table_and_figures(tmp_path):
    for k in (1, 4, 16):
        _run(tmp_path, f"linf{k}", {**CENTRE, "eps": k / 255, "norm": "linf"}, k / 100)
        _run(tmp_path, f"l2{k}", {**CENTRE, "eps": k / 255 * math.sqrt(3 * 224 * 224) / 2,
                                  "norm": "l2"}, k / 50)
    _run(tmp_path, "fixed", {**CENTRE, "eps": 4 / 255, "norm": "linf",
                             "unlearn_step": "fixed"}, 0.5)
    records = ablation_records(tmp_path)
    assert {"kl", "p_c_baseline", "insertion-deletion"} <= set(records["metric"])
    _run(tmp_path, "interrupted", {**CENTRE, "eps": 8 / 255, "norm": "linf",
                                   "unlearn_step": "fixed"}, 0.5, images=2)
    _run(tmp_path, "paper", PAPER, 0.4, images=2)
    lines = write_ablation(tmp_path, min_images=4)
    paper_rows = [r for r in (tmp_path / "tables" / "uni_ablation.md").read_text().splitlines()
                  if r.startswith("| uni_paper")]
    assert len(paper_rows) == 1 and "sign-constant-last" in paper_rows[0]
    table = pd.read_csv(tmp_path / "tables" / "uni_ablation.csv")
    for column in ("eps", "norm", "variant", "pgd_steps", "metric", "mean", "ci_low",
                   "ci_high", "n"):
        assert column in table
    cell = table[(table["metric"] == "mufidelity") & (table["norm"] == "l2")
                 & (table["eps_255"] == 16)]
    assert len(cell) == 1 and cell["n"].item() == 4
    assert cell["mean"].item() == pytest.approx(16 / 50 + 0.015)
    assert cell["ci_low"].item() <= cell["mean"].item() <= cell["ci_high"].item()
    assert set(table.loc[table["metric"] == "mufidelity", "variant"]) == {"normalised", "fixed"}
    assert (tmp_path / "figures" / "uni_ablation_mufidelity.png").stat().st_size > 0
    assert any("uni_ablation_noise_floor_intersection.png" in line for line in lines)
    assert np.isfinite(table["mean"]).all()
    # every cell is reported: the interrupted setting (2 of 4 images) with its n
    assert (table.loc[table["eps_255"] == 8, "n"] == 2).all()
    partial = pd.read_csv(tmp_path / "tables" / "uni_ablation_partial.csv")
    assert set(partial["eps_255"]) == {8.0, 4.0} and (partial["n_total"] == 2).all()
    assert any("Not complete yet" in line and "(2 images)" in line for line in lines)


def test_no_ablation_runs_no_section(tmp_path):
    assert write_ablation(tmp_path) == []


def test_two_configs_never_share_a_table_cell(tmp_path):
    """Rows of two configs of one method in one run directory: the tables refuse in one
    line instead of pooling them (n would silently double)."""
    from uni.analysis.tables import load_records
    from uni.errors import ConfigError

    run_dir = tmp_path / "faithfulness"
    rows = [{"image_id": f"img{i}", "split": "dev", "model": "m", "method": "uni",
             "metric": "mufidelity", "value": 0.1, "config_hash": h, "seed": 0}
            for i in range(3) for h in ("aaa", "bbb")]
    RecordStore(run_dir).write(rows)
    with pytest.raises(ConfigError, match=r"2 configs \(aaa, bbb\)"):
        load_records([run_dir])
    done = subprocess.run([sys.executable, "-m", "uni.run", "tables", str(run_dir), "--out",
                           str(tmp_path / "t")], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "configs" in done.stderr


def _settings_records(values: dict, p_c: dict, images: int = 30) -> pd.DataFrame:
    """Long records for ``select_setting``: per setting (norm, eps_255) a mean per criterion
    and the worst image's ``p_c(x')``."""
    from uni.analysis.ablation import CRITERIA

    rows = []
    for (norm, eps), mean in values.items():
        base = {"norm": norm, "eps": eps, "eps_255": eps, "variant": "normalised",
                "pgd_steps": 20, "search": "adam-constant", "kl_direction": "forward",
                "run": f"{norm}{eps}"}
        for i in range(images):
            for metric, direction in CRITERIA.items():
                rows.append({**base, "image_id": i, "metric": metric,
                             "value": direction * mean})
            rows.append({**base, "image_id": i, "metric": "p_c_baseline",
                         "value": p_c[(norm, eps)] if i == 0 else 0.01})
    return pd.DataFrame(rows)


def _hard(**worst) -> pd.DataFrame:
    return pd.DataFrame([{"run": run, "max_p_c_hard": v} for run, v in worst.items()])


def test_selection_skips_settings_whose_baseline_keeps_the_class():
    """The best-ranked setting whose worst image keeps p_c(x') >= 0.5 is not eligible;
    an eligible one that fails on the hardest images is passed over; nothing is selected
    while a better-ranked eligible setting is unchecked; a setting below MIN_IMAGES is not
    complete."""
    from uni.analysis.ablation import select_setting, selection_lines

    values = {("linf", 0.5): 0.9, ("linf", 1): 0.8, ("l2", 1): 0.7, ("linf", 4): 0.1}
    p_c = {("linf", 0.5): 0.6, ("linf", 1): 0.2, ("l2", 1): 0.1, ("linf", 4): 0.05}
    records = _settings_records(values, p_c)
    selection = select_setting(records)
    best = selection.iloc[0]
    assert (best["norm"], best["eps_255"]) == ("linf", 1) and best["eligible"]
    assert best["mean_rank"] == 1.0 and not selection["selected"].any()  # unchecked
    assert "nothing selected yet" in selection_lines(selection)[0]
    excluded = selection[selection["eps_255"] == 0.5].iloc[0]
    assert not excluded["eligible"] and excluded["max_p_c_baseline"] == pytest.approx(0.6)

    checked = select_setting(records, _hard(linf1=0.2))
    assert checked.loc[checked["selected"], "run"].tolist() == ["linf1"]
    # linf 1 keeps the class on a hard image: l2 1 (next) is unchecked, so no selection
    assert not select_setting(records, _hard(linf1=0.7))["selected"].any()
    walked = select_setting(records, _hard(linf1=0.7, l21=0.3))
    assert walked.loc[walked["selected"], "run"].tolist() == ["l21"]
    assert "selected: l2 eps = 1" in selection_lines(walked)[0]

    tied = select_setting(_settings_records({("l2", 1): 0.5, ("l2", 2): 0.5},
                                            {("l2", 1): 0.3, ("l2", 2): 0.1}))
    assert tied["mean_rank"].nunique() == 1 and tied.iloc[0]["eps_255"] == 2  # featureless

    linf_1 = (records["norm"] == "linf") & (records["eps_255"] == 1)
    few = select_setting(records[~linf_1 | (records["image_id"] < 15)])
    assert few.iloc[0]["norm"] == "l2"  # linf 1 has 15 images per metric: not complete
    assert not few.loc[(few["norm"] == "linf") & (few["eps_255"] == 1), "complete"].item()
    # recorded skips (NaN: the attack flipped the label) count towards completeness
    skipped = records.copy()
    attacked = (skipped["metric"] == "robustness_random_spearman") & (skipped["image_id"] < 3)
    skipped.loc[attacked, "value"] = float("nan")
    assert select_setting(skipped)["complete"].all()


def test_featureless_on_hardest_is_the_worst_baseline_probability(resnet, small_images):
    """The hardest-images check is the largest p_c(x') of UNI's baseline with a run's
    options (IG-only options such as ``steps`` are ignored), batch size irrelevant."""
    import torch

    from uni.analysis.ablation import featureless_on_hardest
    from uni.methods.unlearning import uni_baseline

    target = torch.tensor([0, 1, 2])
    ids = ["a", "b", "c"]
    options = {"eps": 8 / 255, "norm": "linf", "pgd_steps": 3, "steps": 16, "rule": "right"}
    worst = featureless_on_hardest(resnet, (small_images, target, ids), options, batch=2)
    _, diagnostics = uni_baseline(resnet, small_images, target, image_ids=ids, eps=8 / 255,
                                  norm="linf", pgd_steps=3)
    assert worst == pytest.approx(diagnostics["p_c_baseline"].max().item(), rel=1e-5)


def test_an_unreadable_images_skip_rows_under_each_entry_key_are_no_mixed_cell(tmp_path):
    """An unreadable image is recorded once per metric entry (each under its entry's key):
    that is not two configs in one cell, and the metrics' own cells stay checked."""
    from uni.analysis.tables import load_records
    from uni.errors import ConfigError

    run_dir = tmp_path / "faithfulness"
    rows = [{"image_id": image, "split": "dev", "model": "m", "method": "uni",
             "metric": metric, "value": value, "config_hash": h, "seed": 0}
            for image, metric, value, h in (
                ("good", "mufidelity", 0.1, "mu"), ("good", "deletion", 0.2, "del"),
                ("bad", "skipped", float("nan"), "mu"), ("bad", "skipped", float("nan"), "del"))]
    RecordStore(run_dir).write(rows)
    assert len(load_records([run_dir])) == 4
    RecordStore(run_dir).write([{**rows[0], "image_id": "other", "config_hash": "mu2"}])
    with pytest.raises(ConfigError, match=r"2 configs \(mu, mu2\)"):
        load_records([run_dir])


def test_selected_overrides_give_an_entry_the_selected_radius(tmp_path, monkeypatch):
    """`ablation overrides`: the selected setting's eps and norm for a named entry, once
    the hardest-image checks are cached; one line, no traceback, while nothing is
    selected or when the selection varies more than eps and norm."""
    import uni.analysis.ablation as ablation

    records = _settings_records({("linf", 1): 0.8, ("l2", 2): 0.7},
                                {("linf", 1): 0.2, ("l2", 2): 0.1})
    monkeypatch.setattr(ablation, "ablation_records", lambda _: records)
    with pytest.raises(ValueError, match="no UNI setting is selected"):
        ablation.selected_overrides(tmp_path, "own")  # not checked on the hardest images
    few = records[(records["norm"] == "l2") | (records["image_id"] < 10)]
    monkeypatch.setattr(ablation, "ablation_records", lambda _: few)
    with pytest.raises(ValueError, match="1 of the 2 UNI settings"):
        ablation.selected_overrides(tmp_path, "own")  # a setting still running
    monkeypatch.setattr(ablation, "ablation_records", lambda _: records)
    (tmp_path / "tables").mkdir()
    _hard(linf1=0.7, l22=0.3).to_csv(tmp_path / "tables" / ablation.FEATURELESS_FILE,
                                     index=False)
    assert ablation.selected_overrides(tmp_path, "own") == ["method.own.eps=2.0",
                                                           "method.own.norm=l2"]
    monkeypatch.setattr(ablation, "ablation_records",
                        lambda _: records.assign(search="sign-constant"))
    with pytest.raises(ValueError, match="not only eps and norm"):
        ablation.selected_overrides(tmp_path, "own")
    with pytest.raises(ValueError, match="not a method entry's name"):
        ablation.selected_overrides(tmp_path, "own.eps=1 x")

    done = subprocess.run([sys.executable, "-m", "uni.analysis.ablation", "overrides",
                           str(tmp_path / "none"), "own"], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "no UNI setting" in done.stderr


@pytest.mark.parametrize(("module", "experiment"), [
    ("uni.analysis.ablation", "uni_ablation"),
    ("uni.analysis.baseline_ablation", "baseline_ablation")])
def test_select_refuses_a_folder_without_runs_and_a_missing_image_folder_in_one_line(
        tmp_path, module, experiment):

    def select(*arguments):
        done = subprocess.run([sys.executable, "-m", module, "select", *map(str, arguments)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().count("\n") == 0
        return done.stderr

    assert f"holds no {experiment} runs with records" in select(tmp_path, tmp_path)
    _run(tmp_path, "linf1", {**CENTRE, "eps": 1 / 255, "norm": "linf"}, 0.1)
    if experiment != "uni_ablation":  # the same records under the baselines' folder
        (tmp_path / "uni_ablation").rename(tmp_path / experiment)
    assert "is not a directory" in select(tmp_path, tmp_path / "absent")

"""REPORT.md's "What drives UNI" section on synthetic records with known differences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uni.analysis.what_drives_uni import what_drives_rows
from uni.records import RecordStore


def _records(n: int = 12) -> pd.DataFrame:
    """UNI beats adv_baseline by 0.1 MuFidelity on every image, equals random_ball up to
    noise, and loses to uni_paper by 0.2; deletion lower is better (UNI 0.1 lower than
    adv_baseline: better)."""
    noise = np.random.default_rng(0).normal(0, 0.01, size=n)
    rows = []
    for i in range(n):
        base = 0.3 + 0.01 * i
        values = {"uni": base, "adv_baseline": base - 0.1, "random_ball": base + noise[i],
                  "uni_paper": base + 0.2, "ig_black": base - 0.3}
        for method, value in values.items():
            distance = 1.5 if method != "ig_black" else 100.0
            rows.append({"image_id": f"im{i}", "split": "dev", "model": "m", "method": method,
                         "metric": "mufidelity", "value": value, "dist_l2": distance,
                         "config_hash": method, "seed": 0})
            rows.append({"image_id": f"im{i}", "split": "dev", "model": "m", "method": method,
                         "metric": "deletion", "value": 1 - value, "dist_l2": distance,
                         "config_hash": method, "seed": 0})
    return pd.DataFrame(rows)


def test_rows_give_effect_interval_holm_p_verdict_and_a_sentence():
    rows = what_drives_rows(_records(), ["mufidelity", "deletion"]).set_index(
        ["metric", "control"])
    assert set(rows.index.get_level_values("control")) == {"adv_baseline", "random_ball",
                                                           "uni_paper"}  # not ig_black
    adv = rows.loc[("mufidelity", "adv_baseline")]
    assert adv["UNI - control"].startswith("+0.100 [+0.100, +0.100]")
    assert adv["verdict"] == "UNI better" and adv["n"] == 12
    assert adv["reading"].startswith("Unlearning adds +0.1 mufidelity over an adversarial")
    assert adv["reading"].endswith(": UNI better.")
    assert rows.loc[("mufidelity", "uni_paper"), "verdict"] == "UNI worse"
    assert rows.loc[("mufidelity", "random_ball"), "verdict"] == "inconclusive"
    # deletion: lower is better, so UNI's -0.1 against adv_baseline is "better"
    assert rows.loc[("deletion", "adv_baseline"), "verdict"] == "UNI better"
    assert rows.loc[("deletion", "adv_baseline"), "UNI - control"].startswith("-0.100")
    assert float(rows.loc[("mufidelity", "adv_baseline"), "Holm p"]) < 0.05


def test_report_has_the_section_its_csv_and_the_distance_figure(tmp_path):
    from uni.analysis.report import build_report

    run = tmp_path / "faithfulness"
    records = _records()
    RecordStore(run).write(records[records["metric"] == "mufidelity"].to_dict("records"))
    RecordStore(run).consolidate()
    report = build_report(tmp_path).read_text()
    assert "## What drives UNI" in report
    assert "- Unlearning adds +0.1 mufidelity over an adversarial baseline" in report
    table = pd.read_csv(tmp_path / "tables" / "what_drives_uni.csv")
    assert len(table) == 3 and set(table["experiment"]) == {"faithfulness"}
    assert (tmp_path / "figures" / "metric_vs_distance_faithfulness.png").stat().st_size > 0
    # the Claims compare UNI with its rivals only (ig_black), not its controls
    claims = report.split("## Claims")[1].split("##")[0]
    assert "MuFidelity: UNI highest" in claims and "vs ig_black" in claims


def test_corrupted_images_count_once_per_base_image():
    """ImageNet-C: 3 corruptions of each of 12 base images are one paired unit each (as
    the ImageNet-C claims), not 36; a diagnostic row without the column finds its base."""
    from uni.analysis.claims import diagnostic_records
    from uni.analysis.what_drives_uni import base_image_units

    clean = _records()
    corrupted = pd.concat([clean.assign(base_image_id=clean["image_id"],
                                        image_id=clean["image_id"] + f"|c{k}/1",
                                        value=clean["value"] + 0.01 * k,
                                        monotonicity=0.5 + 0.1 * k)
                           for k in range(3)], ignore_index=True)
    units = base_image_units(pd.concat([corrupted,
                                        diagnostic_records(corrupted, "monotonicity")]))
    assert units.groupby("metric")["image_id"].nunique().to_dict() == {
        "deletion": 12, "monotonicity": 12, "mufidelity": 12}
    rows = what_drives_rows(units, ["mufidelity"])
    assert (rows["n"] == 12).all()
    assert np.isclose(units[(units["metric"] == "monotonicity")]["value"], 0.6).all()

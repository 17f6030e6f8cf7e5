"""The report's sections on trusting the metrics, on synthetic records: floors (trivial
maps) apart in tables and claims, ROAD, the ranking across metrics, the sanity checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uni.analysis.ranking import kendalls_w, ranking
from uni.records import RecordStore


def _records(shifts: dict[str, float], metric: str, n: int = 12, seed: int = 0,
             model: str = "m") -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    base = generator.uniform(0.2, 0.6, n)
    return pd.DataFrame([
        {"image_id": f"img{i}", "model": model, "method": method, "metric": metric,
         "value": base[i] + shift + generator.normal(0, 0.01)}
        for method, shift in shifts.items() for i in range(n)])


def _write(run_dir, frame: pd.DataFrame) -> None:
    rows = frame.assign(split="dev", config_hash="h", seed=0).to_dict("records")
    RecordStore(run_dir).write(rows)
    RecordStore(run_dir).consolidate()


def test_kendalls_w_and_ranking_of_methods_across_metrics():
    assert kendalls_w(np.array([[1, 2, 3], [1, 2, 3]])) == 1.0
    assert kendalls_w(np.array([[1, 2, 3], [3, 2, 1]])) == 0.0
    # uni best under mufidelity (higher) and deletion (lower); ig_black worst under both
    records = pd.concat([
        _records({"uni": 0.3, "ig_blur": 0.1, "ig_black": 0.0}, "mufidelity"),
        _records({"uni": -0.3, "ig_blur": -0.1, "ig_black": 0.0}, "deletion", seed=1),
        _records({"uni": 0.1, "ig_blur": 0.2, "ig_black": 0.0}, "insertion", seed=2),
    ])
    table, w, images = ranking(records)
    assert list(table.index) == ["uni", "ig_blur", "ig_black"] and images == 12
    assert table.loc["uni", "mufidelity"] == 1 and table.loc["uni", "insertion"] == 2
    assert table.loc["uni", "mean rank"] == np.mean([1, 1, 2])
    assert table.loc["uni", "low"] <= table.loc["uni", "mean rank"] <= table.loc["uni", "high"]
    # judges: (1,2,3), (1,2,3), (2,1,3) -> W = 12 * S / (m^2 (n^3 - n)), S = 14
    assert w == 12 * 14 / (9 * 24)


def test_report_sections_floors_road_ranking_and_sanity(tmp_path):
    shifts = {"uni": 0.3, "ig_black": 0.0, "trivial_edges": 0.5, "trivial_noise": -0.2}
    faithfulness = pd.concat([
        _records(shifts, "mufidelity"),
        _records({"uni": -0.2, "ig_black": 0.0, "trivial_edges": 0.1, "trivial_noise": 0.2},
                 "deletion", seed=1),
        _records({"uni": -0.2, "ig_black": 0.0, "trivial_edges": 0.1, "trivial_noise": 0.2},
                 "road_morf", seed=2),
        _records({"uni": 0.2, "ig_black": 0.0, "trivial_edges": -0.1, "trivial_noise": -0.2},
                 "road_lerf", seed=3),
    ])
    _write(tmp_path / "faithfulness", faithfulness)
    steps = [_records({"uni": 0.5 - 0.3 * k, "ig_black": 0.6 - 0.1 * k, "trivial_edges": 0.6},
                      f"sanity_cascading_spearman_abs@{k}", seed=k) for k in (1, 2, 3)]
    steps.append(_records({"uni": 0.0, "ig_black": 0.0, "trivial_edges": 0.6},
                          "sanity_random_logit_spearman_abs", seed=9))
    _write(tmp_path / "sanity", pd.concat(steps))

    from uni.analysis.report import build_report

    report = build_report(tmp_path).read_text()
    sections = {s.split("\n", 1)[0]: s for s in report.split("\n## ")}
    claims = sections["Claims"]
    mufidelity = next(line for line in claims.splitlines() if "MuFidelity: UNI" in line)
    # judged without the floors (uni beats ig_black), yet trivial_edges beats UNI
    assert "| holds " in mufidelity and "UNI: trivial_edges (+0.2" in mufidelity
    assert "ig_black: trivial_edges" in mufidelity
    assert "trivial_noise" not in mufidelity
    table = next(block for block in sections["Faithfulness: MuFidelity (model x method)"]
                 .split("\n\n") if "floor: trivial_edges" in block)  # not the cost table
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["ig_black", "uni", "floor: trivial_noise", "floor: trivial_edges"]
    paired = sections["Faithfulness: MuFidelity (model x method)"].split("Paired")[1]
    assert "trivial" not in paired  # the tests compare the attribution methods only
    assert "**" not in next(line for line in table.splitlines() if "floor: trivial_edges" in line)
    assert "MoRF-LeRF order agreement: Spearman nan" in sections["ROAD (RemOve And Debias)"]
    ranking_lines = sections["Ranking across metrics"]
    assert "Kendall's W across the 4 metrics" in ranking_lines
    assert (tmp_path / "figures" / "ranking.png").exists()
    sanity = sections["Sanity checks"]
    verdicts = {line.split("|")[1].strip(): line for line in sanity.splitlines()
                if line.startswith("| ") and "verdict" not in line}
    assert verdicts["uni"].rstrip(" |").endswith("passes")  # about 0 at full randomisation
    assert verdicts["ig_black"].rstrip(" |").endswith("fails")  # about 0.7
    assert verdicts["trivial_edges"].rstrip(" |").endswith("fails")
    assert (tmp_path / "figures" / "sanity_cascading_m.png").exists()


def test_a_method_run_on_a_subset_does_not_cut_the_ranking_down_to_it(tmp_path):
    """AGI runs on the first 50 of 300 images: the main ranking keeps every image of the
    other methods and says what it left out; a second table ranks all on the subset."""
    from uni.analysis.ranking import ranking_lines

    records = pd.concat([
        _records({"uni": 0.3, "ig_blur": 0.1, "ig_black": 0.0}, "mufidelity"),
        _records({"uni": -0.3, "ig_blur": -0.1, "ig_black": 0.0}, "deletion", seed=1),
        _records({"agi": 0.2}, "mufidelity", n=5),
        _records({"agi": -0.2}, "deletion", n=5, seed=1),
    ])
    lines = ranking_lines(records, tmp_path)
    text = "\n".join(lines)
    main, subset = text.split("Left out above, run on a subset of the images: agi (5 images).")
    assert "12 images complete" in main and "| agi" not in main
    assert "5 images complete" in subset and "| agi" in subset
    assert (tmp_path / "tables" / "ranking-subset.csv").exists()

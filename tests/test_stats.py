"""Paired statistics (uni/analysis/stats.py) and the Claims section of the report
(uni/analysis/claims.py)."""

import numpy as np
import pandas as pd
import pytest
import yaml

from uni.analysis.stats import (
    cd_figure,
    friedman_posthoc,
    holm,
    paired_differences,
    per_image,
    verdict,
)
from uni.experiments import EXPERIMENTS
from uni.records import RecordStore

OTHERS = ("ig_black", "ig_blur", "deeplift")


def _records(shifts: dict[str, float], metric="mufidelity", n=30, noise=0.02, seed=0):
    """Long records: every method = a per-image base value + its shift + small noise."""
    generator = np.random.default_rng(seed)
    base = generator.uniform(0.2, 0.6, n)
    rows = [
        {"image_id": f"img{i}", "model": "m", "method": method, "metric": metric,
         "value": base[i] + shift + generator.normal(0, noise)}
        for method, shift in shifts.items() for i in range(n)
    ]
    return pd.DataFrame(rows)


def _verdict(uni_shift: float, metric="mufidelity", **options) -> str:
    records = _records({"uni": uni_shift, **dict.fromkeys(OTHERS, 0.0)}, metric, **options)
    return verdict(paired_differences(records, metric), metric)


def test_clear_win_holds_clear_loss_fails_tie_is_inconclusive():
    assert _verdict(+0.3) == "holds"
    assert _verdict(-0.3) == "fails"
    assert _verdict(0.0, noise=0.1) == "inconclusive"


def test_lower_is_better_metric_reverses_the_direction():
    assert _verdict(-0.3, "deletion") == "holds"
    assert _verdict(+0.3, "deletion") == "fails"


def test_fewer_than_five_paired_images_is_inconclusive():
    assert _verdict(+0.3, n=4) == "inconclusive"
    assert _verdict(-0.3, n=4) == "inconclusive"


def test_one_better_method_fails_the_claim_even_when_another_is_untested():
    records = _records({"uni": 0.0, "ig_black": 0.3, "ig_blur": -0.3})
    records = records[~((records["method"] == "ig_blur") & (records["image_id"] != "img0"))]
    differences = paired_differences(records, "mufidelity").set_index("method")
    assert differences.loc["ig_blur", "n"] == 1 and differences.loc["ig_black", "n"] == 30
    assert verdict(differences.reset_index(), "mufidelity") == "fails"


def test_a_skewed_difference_whose_mean_and_ranks_disagree_decides_nothing():
    # ig_black loses to UNI by a little on 80 images and wins by a lot on 20: its mean
    # difference is positive (interval above 0) while the signed ranks favour UNI, and
    # the two-sided Wilcoxon p is small; the old rule called that "fails"
    values = {"uni": np.zeros(100), "ig_black": np.r_[np.full(80, -0.01), np.full(20, 0.2)]}
    records = pd.DataFrame([
        {"image_id": f"img{i}", "model": "m", "method": method, "metric": "mufidelity",
         "value": v[i] + 0.001 * i} for method, v in values.items() for i in range(100)])
    row = paired_differences(records, "mufidelity").iloc[0]
    assert row["low"] > 0 and row["p_holm"] < 0.05 and row["ranks"] < 0
    assert verdict(paired_differences(records, "mufidelity"), "mufidelity") == "inconclusive"


def test_paired_differences_use_images_finite_for_both():
    records = _records({"uni": 0.1, "ig_black": 0.0}, n=10)
    records.loc[(records["method"] == "ig_black") & (records["image_id"] == "img3"),
                "value"] = np.nan
    row = paired_differences(records, "mufidelity").iloc[0]
    assert row["method"] == "ig_black" and row["n"] == 9
    assert row["low"] <= row["mean"] <= row["high"] and abs(row["mean"] + 0.1) < 0.03
    assert row["p_holm"] == row["p"]  # one method compared: Holm changes nothing


def test_methods_without_values_are_not_compared():
    records = _records({"uni": 0.3, "ig_black": 0.0, "deeplift": 0.0})
    records.loc[records["method"] == "deeplift", "value"] = np.nan
    assert list(per_image(records, "mufidelity")) == ["ig_black", "uni"]
    assert verdict(paired_differences(records, "mufidelity"), "mufidelity") == "holds"
    assert verdict(paired_differences(records, "other"), "other") == "inconclusive"


def test_holm_against_a_hand_worked_example_and_statsmodels():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (monotone)
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    corrected = holm([np.nan, 0.01, 0.04])  # NaN: no test, not in the family
    assert np.isnan(corrected[0]) and np.allclose(corrected[1:], [0.02, 0.04])
    from statsmodels.stats.multitest import multipletests

    generator = np.random.default_rng(0)
    for size in (1, 2, 5, 8):  # statsmodels runs gc.collect() per call: a few cases
        p = generator.random(size) ** 3
        assert np.allclose(holm(p), multipletests(p, method="holm")[1])


@pytest.mark.parametrize("metric", ["mufidelity", "deletion"])
def test_friedman_ranks_the_methods_in_the_metric_direction(metric):
    records = _records({"ig_black": 0.0, "ig_blur": 0.1, "uni": 0.2}, metric, n=20)
    result = friedman_posthoc(records, metric)
    order = ["uni", "ig_blur", "ig_black"] if metric == "mufidelity" else [
        "ig_black", "ig_blur", "uni"]
    assert list(result.mean_ranks.index) == order and result.mean_ranks.iloc[0] == 1.0
    assert result.n == 20 and result.p < 1e-6 and result.statistic == pytest.approx(40.0)
    assert result.posthoc.shape == (3, 3) and result.posthoc.loc["uni", "ig_black"] < 0.05
    assert friedman_posthoc(records[records["method"] != "uni"], metric) is None  # 2 methods


def test_friedman_leaves_out_a_method_run_on_a_subset_of_the_images():
    records = pd.concat([_records({"ig_black": 0.0, "ig_blur": 0.1, "uni": 0.2}, n=20),
                         _records({"agi": 0.3}, n=5)])
    result = friedman_posthoc(records, "mufidelity")
    assert result.n == 20 and "agi" not in result.mean_ranks  # not cut down to 5 images
    assert result.left_out.to_dict() == {"agi": 5}


def test_critical_difference_figure_is_written(tmp_path):
    records = _records({"ig_black": 0.0, "ig_blur": 0.1, "deeplift": 0.1, "uni": 0.2}, n=12)
    path = cd_figure(friedman_posthoc(records, "mufidelity"), tmp_path / "figures" / "cd.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(run_dir, rows: list[dict], config: dict | None = None) -> None:
    RecordStore(run_dir).write(rows)
    RecordStore(run_dir).consolidate()
    if config is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))


def test_report_opens_with_claims_computed_from_the_records(tmp_path):
    """A faithfulness run where UNI wins MuFidelity on 8 images and loses deletion; a
    robustness run with a noise floor; no stability or ImageNet-C runs."""
    faithfulness = _records({"uni": 0.3, "ig_black": 0.0, "deeplift": 0.0}, n=8)
    deletion = _records({"uni": 0.3, "ig_black": 0.0, "deeplift": 0.0}, "deletion", n=8)
    rows = pd.concat([faithfulness, deletion]).assign(
        split="dev", config_hash="h", seed=0,
        monotonicity=lambda f: np.where(f["method"] == "deeplift", np.nan, 0.5))
    config = {"eval": {"mufidelity": {"metric": "mufidelity", "grid": 9, "subsets": 128},
                       "deletion": {"metric": "deletion", "steps": 10}},
              "output": "prob"}
    _run(tmp_path / "faithfulness", rows.to_dict("records"), config)
    robustness = pd.concat([
        _records({"uni": 0.0, "ig_black": 0.1}, "robustness_random_spearman", n=6),
        _records({"uni": 0.0, "ig_black": 0.0}, "noise_floor_spearman", n=6),
    ]).assign(split="dev", config_hash="h", seed=0)
    _run(tmp_path / "robustness", robustness.to_dict("records"))
    sweep = pd.concat([  # a budget sweep beside it: its own table, achieved size included
        _records({"uni": 0.0, "ig_black": 0.1}, "robustness_random_linf4_spearman", n=6),
        _records({"uni": 0.0, "ig_black": 0.0}, "robustness_random_linf4_linf", n=6),
    ]).assign(split="dev", config_hash="s", seed=0)
    _run(tmp_path / "robustness-sweep", sweep.to_dict("records"))

    from uni.analysis.report import build_report

    report = build_report(tmp_path).read_text()
    assert "Budget linf4;" in report and "robustness_random_linf4_linf" in report
    assert (tmp_path / "tables" / "robustness_linf4.csv").exists()
    # runs without a recorded selection are never called held-out
    assert report.count("not held-out") == 3 and ": held-out" not in report
    assert report.split("\n## ")[1].startswith("Claims")
    claims = report.split("\n## ")[1]
    lines = {line.split("|")[1].strip(): line for line in claims.splitlines()
             if line.startswith("| ") and "claim" not in line}
    # each row names its protocol briefly (P1, ...); the legend below the table in full
    legend = dict(line[2:].split(": ", 1) for line in claims.splitlines()
                  if line.startswith("- P"))

    def protocol(claim: str) -> str:
        return legend[lines[claim].split("|")[3].strip()]

    assert lines["MuFidelity: UNI highest"].rstrip(" |").endswith("holds")
    assert "grid=9 subsets=128 output=prob" in protocol("MuFidelity: UNI highest")
    assert lines["Deletion: UNI lowest"].rstrip(" |").endswith("fails")
    assert lines["Monotone path: UNI's monotonicity highest"].rstrip(" |").endswith(
        "inconclusive")  # every path method equally monotone
    random = "Robustness, random attack: UNI's spearman highest"
    assert "robustness (`robustness`, `robustness-sweep`): unknown" in protocol(random)
    assert lines[random].rstrip(" |").endswith("fails")  # ig_black +0.1 on 6 images
    assert not any("noise_floor" in claim for claim in lines)
    for experiment in ("stability", "imagenet_c"):
        assert lines[f"{experiment}: not run"].rstrip(" |").endswith("inconclusive")
    assert "noise floor spearman" in report and "Noise floor:" in report
    assert "(figures/cd_mufidelity.png)" in report
    assert (tmp_path / "figures" / "cd_mufidelity.png").exists()


def test_claims_table_shows_the_claims_verdicts_across_the_protocol_grid(tmp_path):
    """UNI wins MuFidelity under the paper run and under the black fill of the protocol
    grid, loses it under the blur fill: the Claims row says so; deletion has no grid."""
    mufidelity = _records({"uni": 0.3, "ig_black": 0.0}, n=8)
    deletion = _records({"uni": 0.0, "ig_black": 0.1}, "deletion", n=8)
    _run(tmp_path / "faithfulness", pd.concat([mufidelity, deletion]).assign(
        split="dev", config_hash="h", seed=0).to_dict("records"))
    grid = pd.concat([
        _records({"uni": 0.3, "ig_black": 0.0}, "mufidelity__black__spearman__prob", n=8),
        _records({"uni": 0.0, "ig_black": 0.3}, "mufidelity__blur__spearman__prob", n=8),
    ]).assign(split="dev", config_hash="g", seed=0)
    _run(tmp_path / "protocol_sensitivity", grid.to_dict("records"))

    from uni.analysis.report import build_report

    claims = build_report(tmp_path).read_text().split("\n## ")[1]
    lines = {line.split("|")[1].strip(): line for line in claims.splitlines()
             if line.startswith("| ") and "claim" not in line}
    assert "verdicts under the protocol grid" in claims
    assert "| holds 1, fails 1 of 2 protocols (n 8) |" in lines["MuFidelity: UNI highest"]
    assert lines["Deletion: UNI lowest"].rstrip(" |").endswith("| -")
    assert "| holds " in lines["Deletion: UNI lowest"]  # its own verdict, before the grid


def test_fails_row_shows_the_deciding_methods_p_not_the_worst():
    from uni.analysis.claims import ACROSS, DECIDING, claims_table
    from uni.analysis.stats import deciding_comparison

    # ig_black beats UNI clearly; deeplift ties UNI (a large p): the worst p is deeplift's
    records = _records({"uni": 0.0, "ig_black": 0.3, "ig_blur": -0.3, "deeplift": 0.0},
                       noise=0.1)
    differences = paired_differences(records, "mufidelity").set_index("method")
    worst = differences["p_holm"].idxmax()
    assert worst != "ig_black" and verdict(differences.reset_index(), "mufidelity") == "fails"
    method, p = deciding_comparison(differences.reset_index(), "mufidelity")
    assert method == "ig_black" and p == differences.loc["ig_black", "p_holm"]
    assert p < 0.05 < differences.loc[worst, "p_holm"]
    # the Claims table names it, and corrects it across the report's claims
    loaded = {"faithfulness": (records, [])}
    table = claims_table(loaded, [EXPERIMENTS["faithfulness"], EXPERIMENTS["robustness"]])
    row = table[table["claim"].str.startswith("MuFidelity")].iloc[0]
    assert row[DECIDING] == f"{p:.2g} (ig_black)" and row["verdict"] == "fails"
    assert float(row[ACROSS]) == pytest.approx(float(f"{p:.2g}"), rel=0.05)  # one tested claim


def test_minimum_pairs_is_where_the_smallest_holm_p_drops_below_alpha():
    from uni.analysis.stats import ALPHA, _wilcoxon, min_pairs

    for competitors in (1, 4, 8):
        n = min_pairs(competitors)
        best = [_wilcoxon(np.arange(1.0, k + 1)) for k in (n - 1, n)]
        # n pairs can reach the threshold, n - 1 cannot (every N here is above MIN_PAIRS)
        assert competitors * best[1] < ALPHA <= competitors * best[0]
    assert min_pairs(8) == 9  # exact two-sided p = 2 / 2^n: 8 * 2/512 < 0.05 <= 8 * 2/256
    # with 8 competitors, 8 images all favouring UNI cannot hold; 9 can
    shifts = {"uni": 0.3, **{f"m{i}": 0.0 for i in range(8)}}
    small = _records(shifts, n=8)
    assert verdict(paired_differences(small, "mufidelity"), "mufidelity") == "inconclusive"
    assert verdict(paired_differences(_records(shifts, n=9), "mufidelity"),
                   "mufidelity") == "holds"


def test_seed_spread_is_the_range_of_each_mean_on_the_common_images():
    from uni.analysis.seed_spread import spread_table

    frames = []
    for seed, shift in ((0, 0.0), (1, 0.1), (2, -0.05)):
        frame = _records({"uni": 0.2 + shift, "ig_black": 0.0}, n=10 + seed)  # seed 2: 2 more
        frames.append(frame.assign(seed=seed))
    table = spread_table(frames).set_index(["method", "metric"])
    assert (table["seeds"] == 3).all() and (table["n"] == 10).all()
    assert table.loc[("uni", "mufidelity"), "range"] == pytest.approx(0.15, abs=0.02)
    assert table.loc[("ig_black", "mufidelity"), "range"] < 0.02  # only the noise differs


def test_seed_spread_pairs_each_method_on_its_own_common_images_and_refuses_a_seed_twice():
    from uni.analysis.seed_spread import spread_table

    frames = [_records({"uni": 0.2, "ig_black": 0.0}, n=10).assign(seed=seed)
              for seed in (0, 1)]
    # seed 1 lost ig_black on its first three images (NaN): uni keeps all 10 images
    lost = (frames[1]["method"] == "ig_black") & frames[1]["image_id"].isin(["img0", "img1",
                                                                              "img2"])
    frames[1].loc[lost, "value"] = np.nan
    table = spread_table(frames).set_index(["method", "metric"])
    assert table.loc[("uni", "mufidelity"), "n"] == 10
    assert table.loc[("ig_black", "mufidelity"), "n"] == 7
    assert table.loc[("ig_black", "mufidelity"), "range"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="two runs have seed 0"):
        spread_table([frames[0], frames[0]])


def test_report_shows_the_seed_spread_of_seed_reruns(tmp_path):
    from uni.analysis.report import build_report

    for seed, where in ((0, tmp_path / "faithfulness"),
                        (1, tmp_path / "seeds" / "faithfulness-seed1")):
        records = _records({"uni": 0.3 + 0.05 * seed, "ig_black": 0.0}, n=8, seed=seed)
        where.parent.mkdir(parents=True, exist_ok=True)
        _run(where, records.assign(split="dev", config_hash=f"h{seed}",
                                   seed=seed).to_dict("records"))
    report = build_report(tmp_path).read_text()
    assert "## Seed spread" in report and "`faithfulness-seed1`" in report
    table = pd.read_csv(tmp_path / "tables" / "seed_spread_faithfulness.csv")
    uni = table[(table["method"] == "uni") & (table["metric"] == "mufidelity")].iloc[0]
    assert uni["seeds"] == 2 and uni["n"] == 8 and 0.0 < uni["range"] < 0.2


def test_the_correction_across_claims_starts_from_the_unrounded_p():
    from uni.analysis.claims import EXACT_P, across_claims

    table = pd.DataFrame({EXACT_P: [0.01649, 0.5, np.nan]})
    # Holm from the shown "0.016" would give 0.032; from 0.01649: 0.03298
    assert list(across_claims(table)) == ["0.033", "0.5", "-"]


def test_claims_tally_counts_experiments_not_run_apart_and_keeps_names_as_written():
    from uni.analysis.claims import claims_section

    records = _records({"uni": 0.3, **dict.fromkeys(OTHERS, 0.0)})
    lines = claims_section({"faithfulness": (records, [])},
                           [EXPERIMENTS["faithfulness"], EXPERIMENTS["robustness"]])
    text = "\n".join(lines)
    assert "(1 holds, 0 fails, 3 inconclusive, 1 not run)" in text  # 3 without records
    assert "P, Holm across claims:" in text


def test_imagenet_c_table_counts_base_images_not_corrupted_copies(tmp_path):
    from uni.analysis.report import build_report

    clean = _records({"uni": 0.3, "ig_black": 0.0}, n=6)
    rows = [
        {**row, "image_id": f"{row['image_id']}|{c}/{s}", "base_image_id": row["image_id"],
         "corruption": c, "severity": s, "split": "val", "config_hash": "h", "seed": 0}
        for row in clean.to_dict("records") for c in ("brightness", "shot_noise")
        for s in (1, 2, 3)]
    _run(tmp_path / "imagenet_c", rows)
    build_report(tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "imagenet_c_mufidelity.csv")
    assert set(table["n"]) == {6}  # 6 base images, each its mean over 3 severities

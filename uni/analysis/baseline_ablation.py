"""The baselines' tuning budget (``experiment=baseline_ablation``, ``make
baseline-ablation``): the options of the static and sampled baselines swept on the tuning
subset, each setting scored as UNI's ablation scores UNI's, and one default per method
chosen by UNI's rule (:func:`uni.analysis.ablation.select_setting`: complete, featureless baseline
``p_c(x') < 0.5`` on every image, mean rank over the same criteria, featureless on the
most confident tuning images). One method and setting per run under
``<results>/baseline_ablation/``.

The selected values go to ``conf/method/<method>_tuned.yaml``, an entry that runs beside
the untuned method (``method=[...,ig_blur,ig_blur_tuned]``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uni.analysis.ablation import (
    FEATURELESS,
    HARD_IMAGES,
    ablation_runs,
    check_hardest,
    hydra_config,
    records_and_diagnostics,
    running_settings,
    select_arguments,
    select_per_group,
    selection_lines,
)
from uni.records import write_csv

EXPERIMENT = "baseline_ablation"
# the options tuned per method (the others are the shared path options)
TUNED = {
    "ig_blur": ("sigma",),
    "ig_uniform": ("samples",),
    "ig_gaussian": ("sigma", "samples"),
    "expected_gradients": ("samples",),
}
COLUMNS = ["method", "setting"]
FEATURELESS_FILE = "baseline_ablation_featureless.csv"


def setting_label(method: str, options: dict) -> str:
    """``sigma=10 samples=1``: the tuned options of one run's method entry."""
    return " ".join(f"{k}={options.get(k)}" for k in TUNED.get(method, ()))


def baseline_ablation_records(results_dir: str | Path) -> pd.DataFrame:
    """Every baseline-ablation run's records (metrics, and the per-image diagnostics as
    rows: ``p_c_baseline`` is ``F_c`` at the baseline, the runs' output being the
    probability), with ``method``, ``setting`` and ``run``."""
    frames = []
    for run_dir in ablation_runs(results_dir, EXPERIMENT):
        config = hydra_config(run_dir)
        (method, options), = config["method"].items()
        frames.append(records_and_diagnostics(run_dir, config)
                      .assign(setting=setting_label(method, options), run=run_dir.name))
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "metric", "value", "run"])
    return pd.concat(frames, ignore_index=True)


def select_baselines(records: pd.DataFrame, hard: pd.DataFrame | None = None) -> pd.DataFrame:
    """UNI's rule within each method: one selected setting per method."""
    return select_per_group(records, hard, COLUMNS, groups=("method",))


def outcome(part: pd.DataFrame) -> str:
    """What the rule made of one method's settings: selected; not yet (a setting still
    running, :func:`~uni.analysis.ablation.running_settings`, or an eligible one not yet
    checked on the hardest images); or none can be (no setting featureless, or none that
    is passes on the hardest images)."""
    chosen = part[part["selected"]]
    if len(chosen):
        return f"**selected: {chosen.iloc[0]['setting']}**"
    if (running_settings(part) | (part["eligible"] & part["max_p_c_hard"].isna())).any():
        return ("**nothing selected yet** (`python -m uni.analysis.baseline_ablation select "
                "RESULTS_DIR`)")
    featureless = part[part["max_p_c_baseline"] < FEATURELESS]
    if not len(featureless):
        lowest = part.loc[part["max_p_c_baseline"].idxmin()]
        return (f"**none of its {len(part)} settings is featureless** (p_c(x') < {FEATURELESS} "
                f"on every image; the lowest maximum is {lowest['max_p_c_baseline']:.3f}, at "
                f"{lowest['setting']}): no tuned value")
    return (f"**none of its {len(featureless)} featureless settings passes on the "
            f"{HARD_IMAGES} most confident images**: no tuned value")


def baseline_selection_lines(selection: pd.DataFrame) -> list[str]:
    """REPORT lines: per method, the rule's ranking and what it selected."""
    lines = []
    for method, part in selection.groupby("method", sort=True):
        lines += [f"`{method}`: {outcome(part)}", "",
                  part.drop(columns=["run"], errors="ignore").round(3).to_markdown(index=False),
                  ""]
    return lines


def write_baseline_ablation(results_dir: str | Path) -> list[str]:
    """The selection table under ``tables/baseline_ablation_selection.csv`` and REPORT
    lines (empty without runs)."""
    records = baseline_ablation_records(results_dir)
    if not len(records):
        return []
    cache = Path(results_dir) / "tables" / FEATURELESS_FILE
    selection = select_baselines(records, pd.read_csv(cache) if cache.is_file() else None)
    path = Path(results_dir) / "tables" / "baseline_ablation_selection.csv"
    write_csv(selection, path)
    rule = selection_lines(selection.assign(selected=False))[0].split(": **")[0]
    return [f"The baselines' options on the tuning subset, chosen per method by UNI's "
            f"rule ({rule}).", "", *baseline_selection_lines(selection)]


if __name__ == "__main__":
    import sys

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "select":
        sys.exit("usage: python -m uni.analysis.baseline_ablation select RESULTS_DIR "
                 "[IMAGE_FOLDER]")
    results_dir, folder = select_arguments(sys.argv[2:], EXPERIMENT)
    chosen = check_hardest(results_dir, folder, experiment=EXPERIMENT,
                           records=baseline_ablation_records(results_dir),
                           select=select_baselines, cache_name=FEATURELESS_FILE)
    print("\n".join(baseline_selection_lines(chosen)))

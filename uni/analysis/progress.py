"""How far the runs under a results directory are, for runs resumed across sittings (the
regeneration of the development results, docs/experimental-design.md §6): per run
directory, or per sweep (the runs of one folder, summed up), how many images its methods
have records for against the images its config selects.
``python -m uni.analysis.progress RESULTS_DIR`` prints it as a Markdown table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from uni.records import RecordStore, has_records, saved_config

COLUMNS = ["run", "runs", "complete", "methods", "fewest", "most", "selected"]


def _run_row(run_dir: Path) -> dict:
    """A run's methods, the fewest and most images one of them has (a recorded skip
    counts: the image was run) and the images its config selects (None: all)."""
    counts = RecordStore(run_dir, readonly=True).load().groupby("method")["image_id"].nunique()
    selected = OmegaConf.select(saved_config(run_dir), "data.limit",
                                throw_on_resolution_failure=False)
    fewest = int(counts.min())
    return {"methods": len(counts), "fewest": fewest, "most": int(counts.max()),
            "selected": selected, "complete": selected is not None and fewest >= selected}


def run_progress(results_dir: str | Path) -> pd.DataFrame:
    """One row per run directory with records under ``results_dir``, the runs of a sweep
    (several run directories in one folder below it) as one row: ``runs``, ``complete`` (runs with
    every method at its selected images; unknown for a run of every image), ``methods``,
    ``fewest`` and ``most`` images of a method, ``selected`` (ImageNet-C's are base
    images, its records' images their corrupted versions)."""
    results_dir = Path(results_dir)
    runs = [p.parents[1] for p in sorted(results_dir.rglob(".hydra/config.yaml"))
            if has_records(p.parents[1])]
    folders = pd.Series([r.parent for r in runs]).value_counts()
    rows = {}
    for run_dir in runs:
        swept = run_dir.parent != results_dir and folders[run_dir.parent] > 1
        name = (run_dir.parent if swept else run_dir).relative_to(results_dir).as_posix()
        rows.setdefault(name, []).append(_run_row(run_dir))
    out = []
    for name, parts in rows.items():
        frame = pd.DataFrame(parts)
        selected = frame["selected"].dropna().unique()
        out.append({"run": name + ("/*" if len(parts) > 1 else ""), "runs": len(parts),
                    "complete": int(frame["complete"].sum()),
                    "methods": int(frame["methods"].max()), "fewest": int(frame["fewest"].min()),
                    "most": int(frame["most"].max()),
                    "selected": int(selected[0]) if len(selected) == 1 else None})
    return pd.DataFrame(out, columns=COLUMNS)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python -m uni.analysis.progress RESULTS_DIR (a directory of runs)")
    table = run_progress(sys.argv[1])
    print(table.to_markdown(index=False) if len(table) else
          f"no run with records under {sys.argv[1]}")

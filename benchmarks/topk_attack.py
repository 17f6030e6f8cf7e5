"""The top-k attack's surrogate steps, chosen by measurement (the cost issue's rule).

``make topk-calibration`` runs the top-k attack alone on development images for
``eval.robustness.surrogate_steps`` in {4, 8, 16, 32} (32 = the methods' own steps, the
full-step attack). An attack is as strong as the full-step one when its mean achieved
top-k intersection (lower = stronger) is within or below the 95% bootstrap interval of
the full-step attack's mean, for every method; the default is the smallest such count.

    python benchmarks/topk_attack.py select results/dev-next/topk_calibration

Prints a table and writes ``surrogate_steps.json`` into the sweep's folder (the first
calibration, on the first 10 images in class order, is ``benchmarks/results/
topk-surrogate-steps.json``). A sweep with a setting that has no records yet is refused in
one line (the full-step attack is the reference); the choice is made on the images every
setting has scored, and on fewer than ``--min-images`` none is made.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from uni.analysis.stats import bootstrap_interval
from uni.analysis.tables import load_records
from uni.records import RECORDS_FILE

SELECTION_FILE = "surrogate_steps.json"
METRIC = "robustness_topk_intersection"


def intersections(sweep: Path) -> pd.DataFrame:
    """Achieved top-k intersection per image (rows) and (surrogate steps, method)
    (columns), for the runs of ``sweep``; images skipped by the attack are NaN."""
    if not sweep.is_dir():
        raise SystemExit(f"error: {sweep} is not a folder (make topk-calibration writes one)")
    runs = {run: re.search(r"surrogate_steps=(\d+)", run.name)
            for run in sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())}
    runs = {run: int(match.group(1)) for run, match in runs.items() if match}
    unfinished = [run.name for run in runs if not (run / RECORDS_FILE).exists()]
    if not runs or unfinished:
        raise SystemExit(f"error: {sweep} is not a finished calibration sweep "
                         f"({', '.join(unfinished) or 'no surrogate_steps runs'} without "
                         f"{RECORDS_FILE}): let make topk-calibration finish, then select")
    frames = []
    for run, steps in runs.items():
        records = load_records([run])
        frame = records[records["metric"] == METRIC].assign(steps=steps)
        frames.append(frame[["image_id", "method", "steps", "value"]])
    return pd.concat(frames).pivot_table(index="image_id", columns=["steps", "method"],
                                         values="value", aggfunc="first")


def select(table: pd.DataFrame, min_images: int = 10) -> dict:
    """The smallest surrogate step count as strong as the full-step attack (the largest
    count) for every method, on the images every setting scored (at least
    ``min_images``; else none is chosen), with the evidence."""
    table = table.dropna()
    full = max(steps for steps, _ in table.columns)
    evidence, chosen = [], None
    for steps in sorted({steps for steps, _ in table.columns}):
        strong_for_all = True
        for method in sorted({m for s, m in table.columns if s == steps}):
            reference = table[(full, method)].to_numpy()
            values = table[(steps, method)].to_numpy()
            low, high = bootstrap_interval(reference)
            strong = bool(values.mean() <= high)
            strong_for_all &= strong
            evidence.append({"surrogate_steps": int(steps), "method": method,
                             "images": len(table), "mean_intersection": float(values.mean()),
                             "full_step_mean": float(reference.mean()),
                             "full_step_interval": [low, high], "as_strong": strong})
        if strong_for_all and chosen is None and len(table) >= min_images:
            chosen = int(steps)
    return {"full_steps": int(full), "images": len(table), "chosen": chosen,
            "evidence": evidence}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["select"])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--min-images", type=int, default=10)
    args = parser.parse_args(argv)
    result = select(intersections(args.sweep), args.min_images)
    for row in result["evidence"]:
        low, high = row["full_step_interval"]
        print(f"steps {row['surrogate_steps']:3d} {row['method']:10s} n={row['images']:3d} "
              f"intersection {row['mean_intersection']:.3f} (full {row['full_step_mean']:.3f}, "
              f"95% [{low:.3f}, {high:.3f}]) {'as strong' if row['as_strong'] else 'weaker'}")
    print(f"chosen surrogate_steps: {result['chosen']} (n = {result['images']})")
    (args.sweep / SELECTION_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

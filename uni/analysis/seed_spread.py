"""How much a table's means move with the run's seed (MuFidelity masks, noise baselines,
random starts and attacks are keyed on it; the images are not: ``data.sample_seed``).

The same experiment is rerun with other seeds into ``<results>/seeds/<experiment>-seed<k>``
(outside the ``<experiment>-*`` runs the report pools); with the experiment's own run it
gives, for every model x method x metric mean, its range over the seeds, each mean taken
on the images every seed holds (so only the seed differs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from uni.analysis.tables import SKIPPED, load_records, with_derived_metrics
from uni.records import has_records, write_csv

SEEDS_DIR = "seeds"
SEED_RUN = re.compile(r"^(?P<experiment>\w+)-seed(?P<seed>\d+)$")


def seed_runs(results_dir: str | Path) -> dict[str, list[Path]]:
    """The seed reruns under ``<results>/seeds/``, by experiment."""
    runs: dict[str, list[Path]] = {}
    for path in sorted((Path(results_dir) / SEEDS_DIR).glob("*-seed*")):
        match = SEED_RUN.match(path.name)
        if match and has_records(path):
            runs.setdefault(match["experiment"], []).append(path)
    return runs


def spread_table(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per model x method x metric: the mean under each seed's records (``frames``,
    one per seed, records with a ``seed`` column) on the images all of them hold, and
    ``seeds``, ``n``, ``min``, ``max``, ``range``."""
    parts = []
    for frame in frames:
        frame = with_derived_metrics(frame[frame["metric"] != SKIPPED])
        seed = frame["seed"].dropna().iloc[0] if frame["seed"].notna().any() else len(parts)
        parts.append(frame.assign(seed=seed))
    common = set.intersection(*(set(p["image_id"]) for p in parts))
    values = pd.concat(parts, ignore_index=True)
    values = values[values["image_id"].isin(common)]
    means = values.groupby(["model", "method", "metric", "seed"])["value"].mean().unstack("seed")
    out = pd.DataFrame({"seeds": means.notna().sum(axis=1), "n": len(common),
                        "min": means.min(axis=1), "max": means.max(axis=1)})
    out["range"] = out["max"] - out["min"]
    return out.reset_index()


def seed_spread_lines(results_dir: str | Path, primary: dict[str, list[Path]],
                      out: Path) -> list[str]:
    """REPORT lines: per experiment with seed reruns, the between-seed range of every mean
    (table also in ``tables/seed_spread_<experiment>.csv``); empty without reruns.
    ``primary``: the experiments' run directories (the report's; the first, the
    experiment's own, is the seed of its config)."""
    lines = []
    for experiment, reruns in seed_runs(results_dir).items():
        runs = [*primary.get(experiment, [])[:1], *reruns]  # the experiment's own run first
        table = spread_table([load_records([run]) for run in runs])
        if table.empty:
            continue
        path = out / "tables" / f"seed_spread_{experiment}.csv"
        write_csv(table, path)
        shown = table.assign(**{c: table[c].round(4) for c in ("min", "max", "range")})
        lines += [
            f"`{experiment}` under {table['seeds'].max()} seeds (runs "
            f"{', '.join(f'`{r.name}`' for r in runs)}), each mean on the {table['n'].iloc[0]} "
            "images every seed holds; range = max - min over seeds (CSV: "
            f"`{path.relative_to(out)}`):", "", shown.to_markdown(index=False), "",
        ]
    return lines

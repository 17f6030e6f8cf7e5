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
    """One row per model x method x metric that every seed scored: the mean under each
    seed's records (``frames``, one per seed, records with a ``seed`` column) on the
    images where every seed has a finite value for that method and metric (so only the
    seed differs), and ``seeds``, ``n`` (those images), ``min``, ``max``, ``range``. Two
    frames of the same seed are a :class:`ValueError` (they would be pooled as one)."""
    parts = []
    for frame in frames:
        frame = with_derived_metrics(frame[frame["metric"] != SKIPPED])
        seed = frame["seed"].dropna().iloc[0] if frame["seed"].notna().any() else len(parts)
        if any(seed == part["seed"].iloc[0] for part in parts):
            raise ValueError(f"two runs have seed {seed}: a seed spread needs one run per seed")
        parts.append(frame.assign(seed=seed))
    values = pd.concat(parts, ignore_index=True)
    values = values.assign(value=pd.to_numeric(values["value"], errors="coerce"))
    wide = values.pivot_table(index=["model", "method", "metric", "image_id"],
                              columns="seed", values="value", aggfunc="mean")
    wide = wide.reindex(columns=[p["seed"].iloc[0] for p in parts]).dropna()
    keys = ["model", "method", "metric"]
    means = wide.groupby(level=keys).mean()
    out = pd.DataFrame({"seeds": means.notna().sum(axis=1),
                        "n": wide.groupby(level=keys).size(),
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
        try:
            table = spread_table([load_records([run]) for run in runs])
        except ValueError as err:  # the same seed twice: say so instead of pooling
            lines += [f"`{experiment}`: no seed spread, {err}.", ""]
            continue
        if table.empty:
            continue
        path = out / "tables" / f"seed_spread_{experiment}.csv"
        write_csv(table, path)
        shown = table.assign(**{c: table[c].round(4) for c in ("min", "max", "range")})
        lines += [
            f"`{experiment}` under {table['seeds'].max()} seeds (runs "
            f"{', '.join(f'`{r.name}`' for r in runs)}), each mean on the images where every "
            "seed has a value for that method and metric (n; at most "
            f"{table['n'].max()}); range = max - min over seeds (CSV: "
            f"`{path.relative_to(out)}`):", "", shown.to_markdown(index=False), "",
        ]
    return lines

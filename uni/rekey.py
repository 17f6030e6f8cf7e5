"""Re-key records written with one ``config_hash`` per method (before records were keyed
per metric entry, :class:`uni.engine.identity.RecordKeys`), so a rerun does not recompute them.

A run directory's resolved config (``.hydra/config.yaml``) gives both keys: the previous
one (a hash over every selected metric's options) and the new one of each row's
``eval`` entry (a ``skipped`` row: one copy under each entry's key). Rows whose hash is the
previous key of that config get the new key; other rows (other configs sharing the
directory) are left as they are, and so are directories without a config. The figure
data (``figures.pt``) of the same config is re-keyed too.

    python -m uni.rekey RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from uni.engine.checks import split_eval
from uni.engine.identity import data_identity, keyed_config, method_identity, record_keys
from uni.metrics import REGISTRY
from uni.records import RecordStore, atomic_write, config_hash, has_records, saved_config


def previous_keys(cfg: dict) -> dict[str, str]:
    """The one key per method records had before per-entry keys: the method's identity
    with every selected metric's options."""
    metrics, _ = split_eval(cfg["eval"])
    data = data_identity(cfg["data"])
    return {name: config_hash({**method_identity(cfg, data, name), "eval": metrics})
            for name in cfg["method"]}


def entry_of_record(cfg: dict) -> dict[str, str]:
    """Record name -> the ``eval`` entry that writes it."""
    metrics, _ = split_eval(cfg["eval"])
    return {name: entry for entry, options in metrics.items()
            for name in REGISTRY[options["metric"]].records(entry, options)}


def rekey(run_dir: Path) -> str:
    """Re-key ``run_dir``'s rows of its config; a one-line account of what changed."""
    saved = saved_config(run_dir)
    if saved is None or not has_records(run_dir):
        return f"{run_dir}: no config or records, left alone"
    cfg = keyed_config(OmegaConf.to_container(saved, resolve=True))
    previous = previous_keys(cfg)
    keys = record_keys(cfg, data_identity(cfg["data"]))
    entries = entry_of_record(cfg)
    counts = {"changed": 0, "unknown": 0, "rows": 0}

    def change(frame):
        counts["rows"] = len(frame)
        copies, dropped = [], []
        for method, old in previous.items():
            for index in frame.index[(frame["method"] == method)
                                     & (frame["config_hash"] == old)]:
                metric = frame.at[index, "metric"]
                if metric == "skipped":
                    row = frame.loc[index].to_dict()
                    copies += [{**row, "config_hash": h} for h in keys.entries[method].values()]
                    dropped.append(index)
                elif metric in entries:
                    frame.at[index, "config_hash"] = keys.entries[method][entries[metric]]
                else:
                    counts["unknown"] += 1
                    continue
                counts["changed"] += 1
        if not copies:
            return frame
        return pd.concat([frame.drop(index=dropped), pd.DataFrame(copies)], ignore_index=True)

    RecordStore(run_dir).rewrite(change)
    figures = run_dir / "figures.pt"
    if figures.exists():
        data = torch.load(figures, weights_only=True)
        if data.get("config_hashes") == previous:
            data["config_hashes"] = keys.figures()
            atomic_write(figures, lambda tmp: torch.save(data, tmp))
    changed, unknown = counts["changed"], counts["unknown"]
    return (f"{run_dir}: {changed} of {counts['rows']} rows re-keyed"
            + (f", {unknown} rows of an unknown record name left" if unknown else ""))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    for run_dir in argv:
        print(rekey(Path(run_dir)))


if __name__ == "__main__":
    main()

"""What each method costs in a run: ``cost.json`` in the run directory, written by the
runner from its own stage clock and pass log (:class:`uni.profiling.StageClock`), and
the REPORT's cost table (:func:`cost_lines`).

``cost.json`` holds, per (method, stage), the wall seconds, the process's CPU seconds
(what the stage used when the machine was shared or the run paused; a stage logged
before they were kept has none, and its CPU column stays n/a), the images the stage handled
and the model rows it passed without and with an input gradient, summed over every
session of the run (a resumed run adds to it), and the devices those seconds were
measured on. Stages: ``explain/<method>`` (images explained, not those read from an
attribution store), ``metric/<entry>`` per method, and the shared ``predict``, ``io`` and
``figures``. A run directory without the file (records written before it existed)
gets ``n/a`` in the table, never an estimate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from uni.records import atomic_write, exclusive

if TYPE_CHECKING:  # the report reads cost.json without torch
    from uni.profiling import StageClock

COST_FILE = "cost.json"
FIELDS = ("seconds", "cpu_seconds", "images", "forward_rows", "gradient_rows")
COLUMNS = ("explain: forward / image", "explain: forward+backward / image",
           "explain: s / image", "metrics: forward / image",
           "metrics: forward+backward / image", "metrics: s / image", "total: s / image",
           "total: CPU s / image")


def device_label(device) -> str:
    """The device a run's seconds were measured on: the GPU's name, or the CPU with its
    torch threads."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} torch threads)"


def save_cost(run_dir: str | Path, clock: StageClock, device) -> None:
    """Add ``clock``'s costs to ``run_dir/cost.json`` (under the records' lock: shards or
    sessions writing to one run directory add up) and clear them from ``clock``, so the
    runner can save after every batch (a killed run keeps the costs of the records it
    wrote) without counting anything twice."""
    if not clock.costs:
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir):
        cost = load_cost(run_dir) or {"devices": {}, "stages": []}
        stages = {(s["method"], s["stage"]): s for s in cost["stages"]}
        seconds = 0.0
        for (method, stage), measured in clock.costs.items():
            row = stages.setdefault((method, stage), {"method": method, "stage": stage,
                                                      **dict.fromkeys(FIELDS, 0)})
            for name in FIELDS:
                if name in row:  # a row from before CPU seconds were kept stays without
                    row[name] += getattr(measured, name)
            seconds += measured.seconds
        label = device_label(device)
        cost["devices"][label] = cost["devices"].get(label, 0.0) + seconds
        cost["stages"] = sorted(stages.values(), key=lambda s: (s["method"], s["stage"]))
        atomic_write(run_dir / COST_FILE,
                     lambda path: path.write_text(json.dumps(cost, indent=1) + "\n"))
    clock.costs.clear()


def load_cost(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / COST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def method_costs(cost: dict, methods: list[str]) -> pd.DataFrame:
    """Per method (rows, in ``methods``' order): model rows and seconds per image of its
    explanation and of its metrics (each metric entry per image it scored, summed over
    entries), and their total; NaN where the run has no such stage."""
    stages = pd.DataFrame(cost["stages"], columns=["method", "stage", *FIELDS])
    table = pd.DataFrame(index=pd.Index(methods, name="method"), columns=list(COLUMNS),
                         dtype=float)
    for method in methods:
        mine = stages[(stages["method"] == method) & (stages["images"] > 0)]
        per_image = mine[["seconds", "cpu_seconds", "forward_rows", "gradient_rows"]].div(
            mine["images"], axis=0)
        explain = mine["stage"].str.startswith("explain/")
        metrics = mine["stage"].str.startswith("metric/")
        for part, rows in (("explain", explain), ("metrics", metrics)):
            if rows.any():
                table.loc[method, f"{part}: forward / image"] = (
                    per_image.loc[rows, "forward_rows"].sum())
                table.loc[method, f"{part}: forward+backward / image"] = (
                    per_image.loc[rows, "gradient_rows"].sum())
                table.loc[method, f"{part}: s / image"] = per_image.loc[rows, "seconds"].sum()
        table.loc[method, "total: s / image"] = table.loc[
            method, ["explain: s / image", "metrics: s / image"]].sum(min_count=1)
        if len(mine):  # n/a when any of its stages lacks CPU seconds
            table.loc[method, "total: CPU s / image"] = per_image["cpu_seconds"].sum(
                min_count=len(mine))
    return table


def _number(value: float, seconds: bool) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value:.3g}" if seconds else f"{value:.0f}"


def cost_lines(run_dir: str | Path, records: pd.DataFrame) -> list[str]:
    """The REPORT's cost table of one run: per method of its records, model passes
    (forward, forward+backward) and seconds per image, from ``cost.json``; every cell
    ``n/a`` where the run directory has none."""
    run_dir = Path(run_dir)
    methods = list(dict.fromkeys(records["method"].dropna()))
    cost = load_cost(run_dir)
    if cost is None:
        table = pd.DataFrame("n/a", index=pd.Index(methods, name="method"),
                             columns=list(COLUMNS))
        note = (f"`{run_dir.name}` has no `{COST_FILE}` (its records predate the runner's "
                "cost log; a rerun writes it): no figure is estimated.")
    else:
        numbers = method_costs(cost, methods)
        table = numbers.apply(lambda column: column.map(
            lambda v, c=column.name: _number(v, c.endswith("s / image"))))
        devices = ", ".join(f"{name} ({seconds:.0f} s)"
                            for name, seconds in cost["devices"].items())
        note = (f"Measured by the runner ({run_dir.name}/{COST_FILE}) on {devices}; passes are "
                "model rows per image (images x steps, perturbations, ...); metric entries "
                "per image they scored, summed; shared stages (prediction, I/O, figures) "
                "excluded. Explanations read from an attribution store cost nothing here; "
                "perturbed images several methods share (MuFidelity's masks depend on the "
                "image only) count for the first method a batch scores. "
                "s: wall seconds; CPU s: the process's CPU seconds, which a shared or "
                "paused machine does not inflate (on a GPU, host time only).")
    return [f"Cost per method (`{run_dir.name}`):", "", table.to_markdown(), "", note, ""]

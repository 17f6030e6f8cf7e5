"""Scale-out arithmetic for ``uni --plan``: the wall time of each shard of a run split
``data.num_shards`` ways (a SLURM array through Hydra's submitit launcher), per device,
and the fewest shards that fit a stated wall time.

The seconds per image come from the plan's own calibration on the current device and,
for ``experiment=faithfulness``, from the GPU runs of ``benchmarks/device.sh``
committed as ``benchmarks/results/device-*.json`` (``images_per_hour`` per model at the
paper profile), so a plan made on a CPU also shows the GPU's figure once it is measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DEVICE_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SHARDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
WALL_HOURS = 24.0  # the wall time a shard must fit, unless --plan-hours says otherwise


def shard_seconds(seconds_per_image: float, setup_seconds: float, images: int,
                  shards: int) -> float:
    """Wall seconds of the largest of ``shards`` shards (each loads the model: setup)."""
    return setup_seconds + math.ceil(images / shards) * seconds_per_image


def fewest_shards(seconds_per_image: float, setup_seconds: float, images: int,
                  hours: float) -> int | None:
    """The fewest shards whose largest fits in ``hours``; None if one image does not."""
    per_shard = math.floor((hours * 3600 - setup_seconds) / seconds_per_image)
    return math.ceil(images / per_shard) if per_shard >= 1 else None


def measured_devices(experiment: str, model: str,
                     results: Path = DEVICE_RESULTS) -> dict[str, float]:
    """Seconds per image of ``experiment`` on ``model`` measured by the device runs
    (``device-*.json``, dry runs excluded), by GPU name; only ``faithfulness`` is measured
    there (at the paper profile)."""
    if experiment != "faithfulness":
        return {}
    found = {}
    for path in sorted(results.glob("device-*.json")):
        run = json.loads(path.read_text())
        section = (run.get("images_per_hour") or {}).get(model) or {}
        if run.get("dry") or section.get("status") != "ok":
            continue
        gpu = (run.get("environment") or {}).get("gpu") or "cuda"
        found[f"cuda ({gpu}; {path.name}, profile=paper)"] = section["seconds_per_image"]
    return found


def shard_lines(seconds_per_image: float, setup_seconds: float, device: str, images: int,
                experiment: str, model: str, hours: float = WALL_HOURS,
                results: Path = DEVICE_RESULTS) -> list[str]:
    """The plan's shard table: per shard count (up to ``images``), the largest shard's
    wall hours on each device, and the fewest shards within ``hours`` per device."""
    devices = {f"{device} (calibrated now)": seconds_per_image,
               **measured_devices(experiment, model, results)}
    counts = [n for n in SHARDS if n <= images] or [1]
    names = list(devices)
    out = [f"  {images} images split into data.num_shards shards: wall hours of the largest "
           "shard, per device",
           "    " + f"{'shards':>7s}" + "".join(f"  {n[:40]:>40s}" for n in names)]
    for n in counts:
        hours_each = [shard_seconds(devices[d], setup_seconds, images, n) / 3600 for d in names]
        out.append("    " + f"{n:7d}" + "".join(f"  {h:40.2f}" for h in hours_each))
    for name in names:
        fewest = fewest_shards(devices[name], setup_seconds, images, hours)
        fits = (f"{fewest} shard(s)" if fewest else "none (one image takes longer)")
        out.append(f"  fewest shards within {hours:g} h on {name}: {fits}")
    if not any(name.startswith("cuda") for name in names):
        out.append("  cuda: pending (no GPU run of this experiment and model in "
                   "benchmarks/results/device-*.json; bash benchmarks/device.sh on a GPU)")
    return out

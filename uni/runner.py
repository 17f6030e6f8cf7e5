"""Batches -> methods -> metrics -> records: the one loop every experiment runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from uni.data import build_dataset, collate
from uni.errors import ConfigError
from uni.methods import explain, get_method
from uni.metrics import get_metric
from uni.metrics._common import batched_scores
from uni.models import OUTPUTS, load_model
from uni.records import RecordStore, config_hash

TARGETS = ("prediction", "label")


@dataclass
class RunSummary:
    images: int
    skipped: int
    stored: int
    seconds: float
    run_dir: Path

    def line(self) -> str:
        return (
            f"done: {self.images} images ({self.skipped} skipped, {self.stored} already stored) "
            f"in {self.seconds:.1f}s; records in {self.run_dir / 'records.parquet'}"
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device={name!r} is not one of ['auto', 'cpu', 'cuda']")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA device is available")
    return torch.device(name)


def split_eval(eval_cfg: dict) -> tuple[dict[str, dict], dict]:
    """``eval`` holds one mapping per metric plus shared settings (e.g. ``batch_size``)."""
    metrics = {k: dict(v) for k, v in eval_cfg.items() if isinstance(v, dict)}
    shared = {k: v for k, v in eval_cfg.items() if not isinstance(v, dict)}
    return metrics, shared


def check_config(cfg: dict) -> None:
    """Fail before any work on names and values that cannot work."""
    if cfg["output"] not in OUTPUTS:
        raise ConfigError(f"output={cfg['output']!r} is not one of {list(OUTPUTS)}")
    if cfg["target"] not in TARGETS:
        raise ConfigError(f"target={cfg['target']!r} is not one of {list(TARGETS)}")
    if not cfg["method"]:
        raise ConfigError("method: no attribution method selected (e.g. method=[ig_black,uni])")
    for name, options in cfg["method"].items():
        get_method(name)
        if int(options.get("steps", 1)) < 1:
            raise ConfigError(f"method.{name}.steps={options['steps']} must be a positive integer")
        if float(options.get("eps", 0)) < 0:
            raise ConfigError(f"method.{name}.eps={options['eps']} must be >= 0")
    metrics, shared = split_eval(cfg["eval"])
    for name, options in metrics.items():
        get_metric(name)
        fraction = options.get("fraction")
        if fraction is not None and not 0 < float(fraction) <= 1:
            raise ConfigError(f"eval.{name}.fraction={fraction} must be in (0, 1]")
    if int(shared.get("batch_size", 1)) < 1 or int(cfg["data"].get("batch_size", 1)) < 1:
        raise ConfigError("eval.batch_size and data.batch_size must be positive integers")


def method_hashes(cfg: dict, data_identity: dict) -> dict[str, str]:
    """One hash per method over everything that changes its records."""
    common = {
        "model": cfg["model"], "data": data_identity, "eval": cfg["eval"],
        "seed": cfg["seed"], "output": cfg["output"], "target": cfg["target"],
    }
    return {
        name: config_hash({**common, "method": {name: options}})
        for name, options in cfg["method"].items()
    }


def _value_rows(base: dict, values: dict[str, torch.Tensor], diagnostics: dict, i: int):
    extra = {k: float(v[i]) for k, v in diagnostics.items()}
    rows = []
    for metric, column in values.items():
        value = float(column[i])
        note = None if math.isfinite(value) else "non-finite value"
        rows.append({**base, "metric": metric, "value": value, "note": note, **extra})
    return rows


def run(cfg: dict, run_dir: str | Path) -> RunSummary:
    """Run every selected method and metric over the dataset; records go to ``run_dir``."""
    start = time.perf_counter()
    check_config(cfg)
    device = resolve_device(cfg["device"])
    model_cfg = dict(cfg["model"])
    model = load_model(model_cfg.pop("name"), device=device, **model_cfg)
    data_cfg = dict(cfg["data"])
    batch_size = data_cfg.pop("batch_size", 8)
    num_workers = data_cfg.pop("num_workers", 0)
    split = data_cfg.pop("split", data_cfg["name"])
    dataset = build_dataset(data_cfg.pop("name"), model.data_config, **data_cfg)
    metrics, shared_eval = split_eval(cfg["eval"])
    eval_batch = int(shared_eval.get("batch_size", 64))
    data_identity = {k: v for k, v in cfg["data"].items()
                     if k not in ("limit", "shard", "num_shards", "batch_size", "num_workers")}
    hashes = method_hashes(cfg, data_identity)
    store = RecordStore(run_dir)
    seed, output = int(cfg["seed"]), cfg["output"]

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers
    )
    images = skipped = stored = 0
    progress = tqdm(total=len(dataset), unit="img", desc=f"{model.name} x {len(hashes)} methods")
    for batch in loader:
        rows = []
        good = [s for s in batch if s.image is not None]
        for sample in batch:
            if sample.image is None:
                skipped += 1
                for method, h in hashes.items():
                    if not store.is_done(sample.image_id, method, h):
                        rows.append({
                            "image_id": sample.image_id, "split": split, "model": model.name,
                            "method": method, "metric": "skipped", "value": float("nan"),
                            "config_hash": h, "seed": seed, "note": sample.skip_reason,
                            "label": sample.label, "target": -1,
                        })
        if good:
            x = torch.stack([s.image for s in good]).to(device)
            labels = torch.tensor([s.label for s in good], device=device)
            with torch.no_grad():
                logits = model(x)
            target = logits.argmax(-1)
            if cfg["target"] == "label":
                target = torch.where(labels >= 0, labels, target)
            score_input = batched_scores(model, x, target, output, eval_batch)
            for method, h in hashes.items():
                todo = [i for i, s in enumerate(good) if not store.is_done(s.image_id, method, h)]
                stored += len(good) - len(todo)
                if not todo:
                    continue
                index = torch.tensor(todo, device=device)
                xs, ts, ids = x[index], target[index], [good[i].image_id for i in todo]
                result = explain(model, xs, ts, method, output=output, image_ids=ids, seed=seed,
                                 **cfg["method"][method])
                values = {}
                for name, options in metrics.items():
                    value = get_metric(name)(
                        model, xs, result.attributions, ts, output=output, image_ids=ids,
                        seed=seed, batch_size=eval_batch, score_input=score_input[index], **options,
                    )
                    values.update(value if isinstance(value, dict) else {name: value})
                for j, i in enumerate(todo):
                    base = {
                        "image_id": ids[j], "split": split, "model": model.name, "method": method,
                        "config_hash": h, "seed": seed, "label": good[i].label,
                        "target": int(ts[j]),
                    }
                    rows += _value_rows(base, values, result.diagnostics, j)
        store.write(rows)  # one atomic write per batch
        images += len(batch)
        progress.update(len(batch))
    progress.close()
    store.consolidate()
    return RunSummary(images, skipped, stored, time.perf_counter() - start, Path(run_dir))

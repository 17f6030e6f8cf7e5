"""A run's job: everything resolved once from a checked config (the model, the dataset,
the method entries' options as their methods run them, the record keys, the stores), and
what the job's results say about its methods."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import yaml

from uni.attribution_store import AttributionStore
from uni.data import ImageDataset, build_dataset
from uni.engine.checks import SETTINGS, check_config, method_kind, resolve_device, split_eval
from uni.engine.identity import RecordKeys, data_identity, keyed_config, record_keys
from uni.figure_data import FigureStore
from uni.methods import METHODS, Explainer
from uni.models import load_model, set_runtime
from uni.profiling import StageClock
from uni.records import config_hash, remove_stale_temporaries, write_text

FAULT_NOTE = "non-finite value"  # the note of a value a numerical fault left NaN or infinite


def run_dataset(data_cfg: dict, data_config: dict) -> tuple[ImageDataset, str]:
    """The dataset a run reads (every ``data.*`` option but the runner's own, ``split``
    included, goes to :func:`build_dataset`) and the label of its records' ``split``
    column: ``data.split_label``, else ``data.split`` (``hf``), else the dataset's name."""
    options = {k: v for k, v in data_cfg.items() if k not in SETTINGS["data"]}
    label = data_cfg.get("split_label")
    if label is None:
        label = str(options.get("split", options["name"]))
    return build_dataset(options.pop("name"), data_config, **options), label


def method_options(methods: dict[str, dict], data: dict, data_config: dict) -> dict[str, dict]:
    """Each method entry's options as its method runs them, ``kind`` removed: completed
    from the run's data split ``data`` where the method asks
    (:attr:`MethodSpec.split_options <uni.methods.MethodSpec>`)."""
    data = {k: v for k, v in data.items() if k not in SETTINGS["data"]}  # the loader's own
    out = {}
    for name, options in methods.items():
        spec = METHODS[method_kind(name, options)]
        options = {k: v for k, v in options.items() if k != "kind"}
        out[name] = spec.split_options(options, data, data_config) if spec.split_options \
            else options
    return out


@dataclass
class AttributionTally:
    """Per method, how many images this run explained and how many of them got
    attributions that are all zero or hold non-finite values: a method whose every
    attribution is so explains nothing, whatever its records read."""

    explained: dict[str, int] = field(default_factory=dict)
    degenerate: dict[str, int] = field(default_factory=dict)

    def add(self, method: str, attributions: torch.Tensor) -> None:
        flat = attributions.detach().flatten(1)
        bad = (~torch.isfinite(flat).all(1)) | (flat == 0).all(1)
        self.explained[method] = self.explained.get(method, 0) + flat.shape[0]
        self.degenerate[method] = self.degenerate.get(method, 0) + int(bad.sum())


@dataclass
class RunSummary:
    images: int
    skipped: int
    stored: int
    seconds: float
    run_dir: Path
    records: pd.DataFrame | None = None  # this run's: its config's rows of its images
    held_out: int = 0  # the split's tuning images a run of its evaluation subset leaves out

    def line(self) -> str:
        held = (f"; {self.held_out} tuning images of the split held out (data.subset=eval; "
                "data.subset=all runs every image)" if self.held_out else "")
        return (
            f"done: {self.images} images ({self.skipped} skipped; {self.stored} image x method "
            f"pairs already stored) "
            f"in {self.seconds:.1f}s; records in {self.run_dir / 'records.parquet'}{held}"
        )


@dataclass
class Job:
    """Everything one run needs, resolved once from the config."""

    model: torch.nn.Module
    device: torch.device
    methods: dict[str, dict]  # options of each method entry, ``kind`` removed
    kinds: dict[str, str]  # the registered method of each entry (:func:`method_kind`)
    keys: RecordKeys
    metrics: dict[str, dict]
    eval_batch: int
    split: str
    seed: int
    output: str
    target: str
    figures: FigureStore
    # every metric's options, selected or not (a protocol sets them all): the figures'
    # curves follow them when the run does not score those metrics
    metric_options: dict[str, dict] = field(default_factory=dict)
    tally: AttributionTally = field(default_factory=AttributionTally)
    clock: StageClock = field(default_factory=StageClock)  # seconds per stage
    store: AttributionStore | None = None  # stored explanations, read before explaining

    def explainer(self, method: str) -> Explainer:
        """The method entry ``method`` as the metrics that explain again receive it."""
        return Explainer(self.model, self.kinds[method], self.methods[method], self.output)

    def stored_explanations(self, ids: list[str], digests: list) -> Callable:
        """``stored(entry)``: every image's stored explanation of method entry ``entry``,
        or ``None`` unless all are stored (:attr:`MethodSpec.stored_options
        <uni.methods.MethodSpec>`)."""
        def stored(entry: str) -> list[dict] | None:
            key = self.keys.explanations.get(entry)
            if self.store is None or key is None:
                return None
            found = []
            for image_id, digest in zip(ids, digests):
                found.append(self.store.get(key, image_id, digest))
                if found[-1] is None:
                    return None
            return found
        return stored


def unusable_methods(job: Job, records, ids: list[str]) -> list[str]:
    """One phrase per method whose results are garbage: every attribution this run
    computed is zero or non-finite, or every value of its records for this run's images
    is NaN from a numerical fault (not an attack's recorded skip); each names the
    method's settings, where such a fault starts (a zero blur or search radius, no search
    steps, an integration that never reaches the image)."""
    problems = []
    mine = records[records["config_hash"].isin(job.keys.all())
                   & records["image_id"].isin(set(ids)) & (records["metric"] != "skipped")]
    for method, keys in job.keys.entries.items():
        explained = job.tally.explained.get(method, 0)
        rows = mine[mine["config_hash"].isin(set(keys.values()))]
        faults = rows["note"] == FAULT_NOTE if "note" in rows else rows["value"].isna()
        if explained and job.tally.degenerate[method] == explained:
            what = f"every attribution of the {explained} images explained is zero or non-finite"
        elif len(rows) and faults.all():
            what = f"all {len(rows)} of its record values are NaN"
        else:
            continue
        options = ", ".join(f"{k}={v}" for k, v in job.methods[method].items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool))
        problems.append(f"method {method}: {what}; check its settings ({options}), the "
                        f"model's weights and the metrics' options")
    return problems


@dataclass
class Prepared:
    """A checked config made ready to run: the config as given, the job, its dataset
    (this shard's images), how they are batched, and how long loading the model and data
    took."""

    cfg: dict
    job: Job
    dataset: ImageDataset
    batch_size: int
    num_workers: int
    setup_seconds: float


def prepare(cfg: dict, run_dir: str | Path) -> Prepared:
    """Check ``cfg`` (one line for what cannot work), load the model and the dataset and
    resolve everything a run needs once."""
    start, original = time.perf_counter(), cfg
    cfg = keyed_config(cfg)
    check_config(cfg)
    device = resolve_device(cfg["device"])
    model_cfg = dict(cfg["model"])
    model = set_runtime(load_model(model_cfg.pop("name"), device=device, **model_cfg),
                        **(cfg.get("runtime") or {}))
    dataset, split = run_dataset(cfg["data"], model.data_config)
    metrics, shared_eval = split_eval(cfg["eval"])
    keys = record_keys(cfg, data_identity(cfg["data"]))
    ids = [item[0] for item in dataset.items]
    job = Job(
        model=model, device=device, keys=keys, metrics=metrics,
        methods=method_options(cfg["method"], cfg["data"], model.data_config),
        kinds={name: method_kind(name, options) for name, options in cfg["method"].items()},
        eval_batch=int(shared_eval.get("batch_size", 64)), split=split,
        metric_options={k: v for k, v in cfg["eval"].items() if isinstance(v, dict)},
        seed=int(cfg["seed"]), output=cfg["output"], target=cfg["target"],
        figures=FigureStore(run_dir, ids[: int(cfg["figures"]["images"])], ids,
                            keys.figures()),
    )
    store = cfg.get("attribution_store", "run")
    if store != "off":
        job.store = AttributionStore(Path(run_dir) / "attributions" if store == "run" else store)
        remove_stale_temporaries(job.store.root)
    return Prepared(original, job, dataset, cfg["data"].get("batch_size", 8),
                    cfg["data"].get("num_workers", 0), time.perf_counter() - start)


def save_config(cfg: dict, run_dir: Path) -> Path:
    """``cfg`` as ``<run_dir>/configs/<its hash>.yaml``: every config run into a directory
    keeps its own file (Hydra's ``.hydra/config.yaml`` holds only the last one)."""
    return write_text(run_dir / "configs" / f"{config_hash(cfg)}.yaml",
                      yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))



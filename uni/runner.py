"""Batches -> methods -> metrics -> records: the one loop every experiment runs."""

from __future__ import annotations

import inspect
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import yaml
from tqdm import tqdm

from uni.analysis.dashboard import log_run
from uni.attribution_store import AttributionStore, join, split
from uni.contract import (
    Setting,
    check_names,
    check_settings,
    from_annotation,
    keyword_parameters,
    merge,
)
from uni.cost import save_cost
from uni.data import ImageDataset, build_dataset, check_data_options, collate
from uni.data.selection import SELECTION_ORDER, check_tuning_subset, write_selection
from uni.errors import ConfigError, RunError
from uni.figure_data import FigureStore
from uni.loggers import make_logger
from uni.methods import METHODS, OPTION_LIMITS, Explainer, check_method_options, explain
from uni.methods.controls import stored_distances, with_uni_distances
from uni.methods.expected_gradients import ReferenceSet
from uni.metrics import (
    check_entry_name,
    check_options,
    deletion_curve,
    get_metric,
    insertion_curve,
)
from uni.metrics._common import scores_by_output
from uni.metrics.score_cache import ScoreCache
from uni.models import OUTPUTS, check_runtime, checkpoint_digest, load_model, set_runtime
from uni.profiling import PassLog, StageClock
from uni.protocol_grid import expand_protocol_grid
from uni.records import (
    DIGEST,
    RecordStore,
    config_hash,
    remove_stale_temporaries,
    write_text,
)

TARGETS = ("prediction", "label")
# method options that change how much is computed at once, not the numbers
SPEED_OPTIONS = frozenset({"internal_batch_size", "unlearn_chunk"})
# ``attribution.*``: defaults of every path method's options
ATTRIBUTION = {
    "steps": merge(Setting(int), OPTION_LIMITS["steps"]),
    "rule": merge(Setting(str), OPTION_LIMITS["rule"]),
    "internal_batch_size": merge(Setting(int), OPTION_LIMITS["internal_batch_size"]),
}
# the runner's own numeric settings, by section ("": top level)
SETTINGS: dict[str, dict[str, Setting]] = {
    # a seed is stored as a 64-bit integer
    "": {"seed": Setting(int, low=-2**63, high=2**63 - 1), "attribution_store": Setting(str)},
    "data": {"batch_size": Setting(int, low=1), "num_workers": Setting(int, low=0),
             "split_label": Setting(str, nullable=True)},
    "eval": {"batch_size": Setting(int, low=1)},
    "figures": {"images": Setting(int, low=0)},
    "runtime": {k: from_annotation(p.annotation)
                for k, p in keyword_parameters(set_runtime).items() if k != "model"},
}
# the sections of a run's config (conf/config.yaml and its groups)
SECTIONS = frozenset({
    *SETTINGS[""], "device", "output", "target", "attribution", "runtime", "eval",
    "protocol_grid", "figures", "model", "data", "method", "logger", "protocol", "profile",
    "paths",  # this machine's paths, which the configs refer to (conf/paths/default.yaml)
    "batch_sizes",  # per-device batch sizes the settings above pick (uni/device_defaults.py)
    "experiment",  # the experiment config's name (uni.run adds it; the logger's job_type)
    "imports",  # a user's modules, imported by uni.run before the run (uni.run.import_modules)
})


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

    def line(self) -> str:
        return (
            f"done: {self.images} images ({self.skipped} skipped; {self.stored} image x method "
            f"pairs already stored) "
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
    """``eval`` holds one mapping per selected metric (with a ``metric`` key naming its
    function) plus shared settings (e.g. ``batch_size``). Mappings without ``metric`` are
    option overrides (from a profile) for metrics this run did not select."""
    metrics = {k: dict(v) for k, v in eval_cfg.items() if isinstance(v, dict) and "metric" in v}
    shared = {k: v for k, v in eval_cfg.items() if not isinstance(v, dict)}
    return metrics, shared


def check_config(cfg: dict) -> None:
    """Fail before any work on names and values that cannot work: one line naming the
    setting and what it may hold (types included: ``data.limit=abc`` is not a traceback
    after the model has loaded)."""
    check_names("", cfg, SECTIONS)
    check_names("attribution", cfg.get("attribution") or {}, ATTRIBUTION)
    check_names("figures", cfg.get("figures") or {}, SETTINGS["figures"])
    check_names("eval", split_eval(cfg["eval"])[1], SETTINGS["eval"])
    for section, settings in SETTINGS.items():
        check_settings(section, cfg if not section else cfg.get(section) or {}, settings)
    check_data_options(cfg["data"], runner_options=SETTINGS["data"])
    check_tuning_subset(cfg.get("experiment"), cfg["data"])
    if cfg["output"] not in OUTPUTS:
        raise ConfigError(f"output={cfg['output']!r} is not one of {list(OUTPUTS)}")
    if cfg["target"] not in TARGETS:
        raise ConfigError(f"target={cfg['target']!r} is not one of {list(TARGETS)}")
    if not cfg.get("method"):
        raise ConfigError("method: no attribution method selected (e.g. method=[ig_black,uni])")
    if not str(cfg.get("attribution_store", "run")).strip():
        raise ConfigError("attribution_store is empty: run (<run dir>/attributions), off or "
                          "a directory")
    # the shared path options first: a bad one is named as the user set it
    check_settings("attribution", cfg.get("attribution") or {}, ATTRIBUTION)
    for name, options in cfg["method"].items():
        check_method_options(name, options)
    metrics, _ = split_eval(cfg["eval"])
    if not metrics:
        raise ConfigError("eval: no metric selected (e.g. eval=[mufidelity])")
    for entry, options in metrics.items():
        try:
            check_options(options["metric"], options)
            check_entry_name(entry, options)
        except ConfigError as err:
            if entry == options["metric"]:
                raise
            raise ConfigError(f"{err} (in eval entry {entry!r})") from None
    runtime = cfg.get("runtime") or {}
    check_runtime(runtime)
    kinds = {method_kind(name, options) for name, options in cfg["method"].items()}
    if runtime.get("compile") and ("deeplift" in kinds or any(
            o.get("hvp") == "autograd" for o in metrics.values())):
        # compiled modules ignore hooks added later (DeepLIFT) and double backward
        raise ConfigError("runtime.compile=true does not work with method deeplift or "
                          "robustness hvp=autograd; drop one of them")


def run_dataset(data_cfg: dict, data_config: dict) -> tuple[ImageDataset, str]:
    """The dataset a run reads (every ``data.*`` option but the runner's own, ``split``
    included, goes to :func:`build_dataset`) and the label of its records' ``split``
    column: ``data.split_label``, else ``data.split`` (``hf``), else the dataset's name."""
    options = {k: v for k, v in data_cfg.items() if k not in SETTINGS["data"]}
    label = data_cfg.get("split_label")
    if label is None:
        label = str(options.get("split", options["name"]))
    return build_dataset(options.pop("name"), data_config, **options), label


def with_references(methods: dict[str, dict], data: dict, data_config: dict) -> dict[str, dict]:
    """Method options with ``reference: split`` (Expected Gradients) given the run's data
    split as a :class:`~uni.methods.expected_gradients.ReferenceSet`: every image of it
    (``data.start``, ``data.limit`` and shards ignored; the option ``reference_size``:
    its first images), so an image's baselines do not depend on the run's selection or
    batches. The config (and the records' hash) keeps the string."""
    data = {k: v for k, v in data.items() if k not in SETTINGS["data"]}  # the loader's own
    made: dict = {}
    out = {}
    for name, options in methods.items():
        if options.get("reference") == "split":
            size = options.get("reference_size")
            if size not in made:
                made[size] = ReferenceSet.from_data(data, data_config, size)
            options = {**options, "reference": made[size]}
        out[name] = options
    return out


def method_kind(name: str, options: dict) -> str:
    """The registered method a ``method.<name>`` entry runs: its ``kind`` option, else
    its name (``kind`` lets one run compare variants of one method, e.g. UNI's ablation:
    ``method.uni_eps8: {kind: uni, eps: ...}``; records carry the entry's name)."""
    return options.get("kind", name)


@dataclass(frozen=True)
class RecordKeys:
    """The ``config_hash`` of each method entry's records (docs/design.md §5): ``entries[method]
    [entry]`` for the rows of ``eval`` entry ``entry``, over the model, the data
    identity, seed, output, target, the method's options and *that entry's* options only,
    so adding a metric or changing another's options leaves them valid;
    ``explanations[method]``, the same without any metric: the key of what the method
    computes (:mod:`uni.attribution_store`)."""

    entries: dict[str, dict[str, str]]
    explanations: dict[str, str]

    def figures(self) -> dict[str, str]:
        """One key per method for its figure data (attributions and curves): changes with
        the method and with any selected metric's options."""
        return {method: config_hash({"explanation": self.explanations[method],
                                     "entries": sorted(keys.values())})
                for method, keys in self.entries.items()}

    def all(self) -> set[str]:
        return {h for keys in self.entries.values() for h in keys.values()}


# which images, how they are batched and what their records' split is called change no value
DATA_SELECTION = ("start", "limit", "shard", "num_shards", "batch_size", "num_workers",
                  "split_label", *SELECTION_ORDER)


def data_identity(data: dict) -> dict:
    """The ``data`` options that change a record's value (not which images are run)."""
    return {k: v for k, v in data.items() if k not in DATA_SELECTION}


def method_identity(cfg: dict, data: dict, name: str) -> dict:
    """What changes method entry ``name``'s explanations: the model, the data identity
    (``data``: :func:`data_identity`), seed, output, target, reduced precision and the
    entry's options less batch and chunk sizes (:data:`SPEED_OPTIONS`); a checkpoint by its
    contents' digest, a method by its version (:class:`~uni.methods.MethodSpec`). The other runtime
    options change only float rounding."""
    model = cfg["model"]
    if model.get("checkpoint"):  # the weights' contents, not only their path
        model = {**model, "checkpoint_digest": checkpoint_digest(model["checkpoint"])}
    identity = {"model": model, "data": data, "seed": cfg["seed"],
                "output": cfg["output"], "target": cfg["target"],
                "method": {name: {k: v for k, v in cfg["method"][name].items()
                                  if k not in SPEED_OPTIONS}}}
    precision = (cfg.get("runtime") or {}).get("precision", "fp32")
    if precision != "fp32":
        identity["precision"] = precision
    spec = METHODS.get(method_kind(name, cfg["method"][name]))
    version = spec.version if spec else 1
    if version > 1:  # records of the method before a fix that changed its values
        identity["method_version"] = version
    return identity


def record_keys(cfg: dict, data: dict) -> RecordKeys:
    """The records' keys (:class:`RecordKeys`): :func:`method_identity`, with one
    ``eval`` entry's options for that entry's rows. Options for metrics the run did not
    select (a protocol or profile sets them for every metric) change none; nor does
    ``eval.batch_size``, which only changes how much is computed at once."""
    metrics, _ = split_eval(cfg["eval"])
    entries, explanations = {}, {}
    for name in cfg["method"]:
        identity = method_identity(cfg, data, name)
        explanations[name] = config_hash(identity)
        entries[name] = {entry: config_hash({**identity, "eval": {entry: metric}})
                         for entry, metric in metrics.items()}
    return RecordKeys(entries, explanations)


def _note(metric: str, values: dict[str, torch.Tensor], i: int) -> str:
    """Why a value is not finite: a robustness attack that could not keep the label, or a
    numerical fault (NaN/Inf output, zero variance)."""
    attack = metric.rsplit("_", 1)[0]
    skipped = values.get(f"{attack}_skipped")
    if metric.startswith("robustness_") and skipped is not None:
        if float(skipped[i]) == 1:
            return "label not kept under attack"
        if not math.isfinite(float(skipped[i])):
            return "not applicable: the attack needs a straight-line surrogate"
    return "non-finite value"


def _value_rows(base: dict, values: dict[str, torch.Tensor], i: int) -> list[dict]:
    """One row per value name of image ``i`` of ``values``, each with ``base``."""
    rows = []
    for metric, column in values.items():
        value = float(column[i])
        note = None if math.isfinite(value) else _note(metric, values, i)
        rows.append({**base, "metric": metric, "value": value, "note": note})
    return rows


def call_metric(fn, **available):
    """Call a metric with the keyword arguments it declares (``explainer`` only reaches
    the metrics that explain again)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return fn(**available)
    return fn(**{k: v for k, v in available.items() if k in parameters})


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
    # deletion / insertion curves follow them when the run does not score those metrics
    metric_options: dict[str, dict] = field(default_factory=dict)
    tally: AttributionTally = field(default_factory=AttributionTally)
    clock: StageClock = field(default_factory=StageClock)  # seconds per stage
    store: AttributionStore | None = None  # stored explanations, read before explaining

    def explainer(self, method: str) -> Explainer:
        """The method entry ``method`` as the metrics that explain again receive it."""
        return Explainer(self.model, self.kinds[method], self.methods[method], self.output)


def skipped_rows(job: Job, store: RecordStore, sample) -> list[dict]:
    """A ``skipped`` record per method and eval entry (under the entry's key, so the
    entry's values replace it once the file can be read) for an image that could not be
    read."""
    return [
        {
            "image_id": sample.image_id, "split": job.split, "model": job.model.name,
            "method": method, "metric": "skipped", "value": float("nan"), "config_hash": h,
            "seed": job.seed, "note": sample.skip_reason, "label": sample.label, "target": -1,
            DIGEST: sample.digest, **sample.meta,
        }
        for method, keys in job.keys.entries.items() for h in keys.values()
        if not store.is_done(sample.image_id, method, h, sample.digest)
    ]


def batch_rows(job: Job, store: RecordStore, samples: list) -> tuple[list[dict], int]:
    """Records of every method x metric for the readable images of one batch, and how
    many image x method pairs were already stored."""
    x = torch.stack([s.image for s in samples]).to(job.device)
    labels = torch.tensor([s.label for s in samples], device=job.device)
    with job.clock.stage("predict", images=len(samples)):
        with torch.no_grad():
            target = job.model(x).argmax(-1)
        if job.target == "label":
            target = torch.where(labels >= 0, labels, target)
        # F_c(x) once per image under every output, shared by every method and metric
        score_inputs = scores_by_output(job.model, x.__getitem__, target, OUTPUTS,
                                        job.eval_batch)
    score_input = score_inputs[job.output]
    # F_c of perturbed images, shared by the metric entries (and methods) of this batch
    cache = ScoreCache()
    rows, stored = [], 0
    for method, keys in job.keys.entries.items():
        # per eval entry, the batch images whose records of it are not stored
        missing = {entry: {i for i, s in enumerate(samples)
                           if not store.is_done(s.image_id, method, h, s.digest)}
                   for entry, h in keys.items()}
        todo = sorted(set().union(*missing.values()))
        stored += len(samples) - len(todo)
        # stored images whose figure data a killed run never saved: explained again for
        # the figures, without new records
        redo = [i for i, s in enumerate(samples) if i not in todo
                and s.image_id in job.figures.ids and not job.figures.has(method, s.image_id)]
        if redo:
            index, ids, result = explain_subset(job, method, x, target, samples, redo)
            with job.clock.stage("figures"):
                keep_for_figures(job, method, x[index], target[index], ids, result,
                                 score_input[index], score_inputs["prob"][index], cache)
        if not todo:
            continue
        index, ids, result = explain_subset(job, method, x, target, samples, todo)
        job.tally.add(method, result.attributions)
        for name, options in job.metrics.items():
            # only the images this entry has no records of (a metric added to a run)
            need = [j for j, i in enumerate(todo) if i in missing[name]]
            if not need:
                continue
            sub = torch.tensor(need, device=job.device)
            options = dict(options)
            fn = get_metric(options.pop("metric"))
            # an entry's own output (OUTPUT_PER_ENTRY) wins over the run's for its scores
            output = options.pop("output", job.output)
            with job.clock.stage(f"metric/{name}", method, len(need)):
                value = call_metric(
                    fn, model=job.model, x=x[index[sub]],
                    attributions=result.attributions[sub], target=target[index[sub]],
                    batch_size=job.eval_batch, score_input=score_inputs[output][index[sub]],
                    explainer=job.explainer(method),
                    baselines=None if result.baselines is None else result.baselines[sub],
                    cache=cache, output=output, image_ids=[ids[j] for j in need],
                    seed=job.seed, **options,
                )
            values = value if isinstance(value, dict) else {name: value}
            for n, j in enumerate(need):
                i = todo[j]
                base = {
                    "image_id": ids[j], "split": job.split, "model": job.model.name,
                    "method": method, "config_hash": keys[name], "seed": job.seed,
                    "label": samples[i].label, "target": int(target[i]),
                    DIGEST: samples[i].digest, **samples[i].meta,
                    **{k: float(v[j]) for k, v in result.diagnostics.items()},
                }
                rows += _value_rows(base, values, n)
        with job.clock.stage("figures"):
            keep_for_figures(job, method, x[index], target[index], ids, result,
                             score_input[index], score_inputs["prob"][index], cache)
    return rows, stored


def explain_subset(job: Job, method: str, x, target, samples: list, rows: list[int]):
    """``method``'s explanation of the batch images at ``rows``: their index into the
    batch, their ids and the result; images whose explanation is in the job's
    attribution store are read from it, the others explained and stored."""
    index = torch.tensor(rows, device=job.device)
    ids = [samples[i].image_id for i in rows]
    key = job.keys.explanations[method]
    parts = {}
    if job.store is not None:
        for j, i in enumerate(rows):
            stored = job.store.get(key, ids[j], samples[i].digest)
            if stored is not None:
                parts[j] = stored
    compute = [j for j in range(len(rows)) if j not in parts]
    result = None
    if compute:
        where = index[compute]
        with job.clock.stage(f"explain/{method}", method, len(compute)):
            options = stored_distances(job.methods[method], job.store, job.keys.explanations,
                                       [ids[j] for j in compute],
                                       [samples[rows[j]].digest for j in compute])
            result = explain(job.model, x[where], target[where], job.kinds[method],
                             output=job.output, image_ids=[ids[j] for j in compute],
                             seed=job.seed, **options)
    if job.store is None:
        return index, ids, result
    if result is not None:
        with job.clock.stage("io"):
            for j, tensors in zip(compute, split(result)):
                job.store.put(key, ids[j], samples[rows[j]].digest, tensors)
                parts[j] = tensors
    return index, ids, join([parts[j] for j in range(len(rows))], job.device)


def keep_for_figures(job: Job, method: str, x, target, ids, result, score_input, probability,
                     cache: ScoreCache | None = None) -> None:
    """Keep what the figures need for the first ``figures.images`` images: the image, its
    explained class and that class's ``probability``, attributions, baseline, ``F_c``
    along the path and deletion / insertion curves (their perturbed images read from the
    batch's ``cache``, where the metrics scored them)."""
    rows = [j for j, image_id in enumerate(ids) if image_id in job.figures.ids]
    if not rows:
        return
    index = torch.tensor(rows, device=x.device)
    options = {"output": job.output, "batch_size": job.eval_batch, "cache": cache}
    metric_options = job.metric_options
    curves = {  # in the run's output (as score_input), whatever the entry's own output
        kind: fn(job.model, x[index], result.attributions[index], target[index],
                 score_input=score_input[index], **options, **{
                     k: v for k, v in metric_options.get(kind.removesuffix("_curves"), {}).items()
                     if k not in ("metric", "output")})
        for kind, fn in (("deletion_curves", deletion_curve), ("insertion_curves", insertion_curve))
    }
    for n, j in enumerate(rows):
        job.figures.keep("images", "", ids[j], x[j])
        job.figures.keep("targets", "", ids[j], target[j])
        job.figures.keep("probabilities", "", ids[j], probability[j])
        kept = {"attributions": result.attributions[j], "baselines": result.baselines,
                "path_scores": result.path_scores,
                **{kind: curve[n] for kind, curve in curves.items()}}
        for kind, value in kept.items():
            if value is not None:
                value = value[j] if kind in ("baselines", "path_scores") else value
                job.figures.keep(kind, method, ids[j], value)


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
        faults = rows["note"] == "non-finite value" if "note" in rows else rows["value"].isna()
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
    """A checked config made ready to run: the job, its dataset (this shard's images),
    how they are batched, and how long loading the model and data took."""

    job: Job
    dataset: ImageDataset
    batch_size: int
    num_workers: int
    setup_seconds: float


def keyed_config(cfg: dict) -> dict:
    """The config a run keys its records on: the protocol grid expanded into eval entries
    (:mod:`uni.protocol_grid`) and each control's ``distance: uni`` resolved to the run's
    UNI options (:func:`uni.methods.controls.with_uni_distances`)."""
    return with_uni_distances(expand_protocol_grid(cfg))


def prepare(cfg: dict, run_dir: str | Path) -> Prepared:
    """Check ``cfg`` (one line for what cannot work), load the model and the dataset and
    resolve everything a run needs once."""
    start = time.perf_counter()
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
        methods=with_references({name: {k: v for k, v in options.items() if k != "kind"}
                                 for name, options in cfg["method"].items()},
                                cfg["data"], model.data_config),
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
    return Prepared(job, dataset, cfg["data"].get("batch_size", 8),
                    cfg["data"].get("num_workers", 0), time.perf_counter() - start)


def save_config(cfg: dict, run_dir: Path) -> Path:
    """``cfg`` as ``<run_dir>/configs/<its hash>.yaml``: every config run into a directory
    keeps its own file (Hydra's ``.hydra/config.yaml`` holds only the last one)."""
    return write_text(run_dir / "configs" / f"{config_hash(cfg)}.yaml",
                      yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def run(cfg: dict, run_dir: str | Path) -> RunSummary:
    """Run every selected method and metric over the dataset; records go to ``run_dir``."""
    start = time.perf_counter()
    ready = prepare(cfg, run_dir)
    save_config(cfg, Path(run_dir))
    job, dataset = ready.job, ready.dataset
    ids = [item[0] for item in dataset.items]
    store = RecordStore(run_dir)
    write_selection(run_dir, dataset)
    remove_stale_temporaries(store.parts)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=ready.batch_size, collate_fn=collate, num_workers=ready.num_workers
    )
    logger = make_logger(cfg.get("logger") or {}, cfg, Path(run_dir))
    job.clock.passes = PassLog(replay=False).attach(job.model)  # cost.json: passes per method
    images = skipped = stored = 0
    # the run directory names a sweep's job (uni.sweep_progress shows this line per job)
    description = f"{Path(run_dir).name}: {job.model.name} x {len(job.keys.entries)} methods"
    progress = tqdm(total=len(dataset), unit="img", desc=description)
    try:
        for batch in loader:
            rows = []
            for sample in batch:
                if sample.image is None:
                    skipped += 1
                    rows += skipped_rows(job, store, sample)
            good = [s for s in batch if s.image is not None]
            if good:
                new_rows, already = batch_rows(job, store, good)
                rows += new_rows
                stored += already
            with job.clock.stage("io"):
                store.write(rows)  # one atomic write per batch
                job.figures.save()
            images += len(batch)
            progress.update(len(batch))
            elapsed = time.perf_counter() - start
            logger.log({"images": images, "skipped": skipped, "images_per_s": images / elapsed})
    finally:  # also on Ctrl-C: what finished is merged, the batch in flight is redone
        progress.close()
        job.clock.passes.detach()
        records = store.consolidate()
        save_cost(run_dir, job.clock, job.device)  # after the records: they come first
        log_run(logger, Path(run_dir), records)
        logger.finish()
    problems = unusable_methods(job, records, ids)
    if problems:  # the records stay: they show what the settings gave
        raise RunError("; ".join(problems) + f" (records kept in {Path(run_dir)})")
    mine = records[records["config_hash"].isin(job.keys.all()) & records["image_id"].isin(ids)]
    return RunSummary(images, skipped, stored, time.perf_counter() - start, Path(run_dir),
                      mine.reset_index(drop=True))


@dataclass
class Plan:
    """What a run will cost, from one calibration batch on the current device: images of
    this shard (and of all shards), seconds per image per stage, model passes per image
    (rows without and with an input gradient), setup seconds (model and data)."""

    experiment: str
    images: int
    all_images: int
    num_shards: int
    calibration_images: int
    stages: dict[str, float]  # seconds per image
    forward_rows: float  # per image
    gradient_rows: float  # per image
    setup_seconds: float
    device: str
    figure_images: int = 0  # the first images, whose figure data is kept (stage "figures")

    @property
    def seconds_per_image(self) -> float:
        return sum(self.stages.values())

    @property
    def estimate_seconds(self) -> float:
        figures = self.stages.get("figures", 0.0)
        return (self.setup_seconds + self.images * (self.seconds_per_image - figures)
                + min(self.images, self.figure_images) * figures)

    def lines(self) -> list[str]:
        hours = self.estimate_seconds / 3600
        stages = sorted(self.stages.items(), key=lambda kv: -kv[1])
        out = [
            f"plan {self.experiment}: {self.images} images on {self.device}; calibrated on "
            f"{self.calibration_images} image(s)",
            f"  model passes per image: {self.forward_rows:.0f} forward, "
            f"{self.gradient_rows:.0f} forward+backward",
            f"  seconds per image: {self.seconds_per_image:.2f} ("
            + ", ".join(f"{k} {v:.2f}" for k, v in stages) + ")",
            f"  estimated wall time: {self.estimate_seconds:.0f} s ({hours:.2f} h) "
            f"including {self.setup_seconds:.0f} s setup",
        ]
        if self.num_shards > 1:
            every = (self.num_shards * self.setup_seconds + self.all_images
                     * (self.seconds_per_image - self.stages.get("figures", 0.0)))
            out.append(f"  per shard (this one of {self.num_shards}); all {self.all_images} "
                       f"images: {every:.0f} process-seconds ({every / 3600:.2f} h)")
        return out


def first_readable(dataset: ImageDataset, n: int) -> list:
    """The first ``n`` samples of ``dataset`` that could be read."""
    samples = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if sample.image is not None:
            samples.append(sample)
        if len(samples) == n:
            break
    return samples


def calibrate(job: Job, samples: list) -> tuple[float, PassLog]:
    """Explain and score ``samples`` as a run does, storing nothing (records go to a
    temporary directory; use a job without attribution store), timed per stage in
    ``job.clock``: the wall seconds and the model calls made (:class:`PassLog`)."""
    log = job.clock.passes = PassLog().attach(job.model)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            batch_rows(job, RecordStore(scratch), samples)
    finally:
        log.detach()
    return time.perf_counter() - start, log


def plan(cfg: dict, run_dir: str | Path, calibration_images: int = 1) -> Plan:
    """The cost of ``cfg``'s run without running it: the first ``calibration_images``
    readable images are explained and scored (:func:`calibrate`: nothing is stored),
    timed per stage, with the model's passes counted; the estimate scales that to the
    run's images."""
    ready = prepare({**cfg, "attribution_store": "off"}, run_dir)
    job, dataset = ready.job, ready.dataset
    data = cfg["data"]
    shards = int(data.get("num_shards", 1) or 1)
    all_images = len(dataset)
    if shards > 1:
        unsharded = {**data, "shard": 0, "num_shards": 1}
        all_images = len(run_dataset(unsharded, job.model.data_config)[0])
    samples = first_readable(dataset, calibration_images)
    if not samples:
        raise RunError("plan: no readable image in the selection to calibrate on")
    _, log = calibrate(job, samples)
    n = len(samples)
    return Plan(
        experiment=str(cfg.get("experiment") or "run"), images=len(dataset),
        all_images=all_images, num_shards=shards, calibration_images=n,
        stages={k: v / n for k, v in job.clock.seconds.items()},
        forward_rows=log.rows(grad=False) / n, gradient_rows=log.rows(grad=True) / n,
        setup_seconds=ready.setup_seconds, device=str(job.device),
        figure_images=len(job.figures.ids),
    )

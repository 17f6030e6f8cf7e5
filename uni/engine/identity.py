"""Record identity (docs/design.md §5): what a record's ``config_hash`` is made of, so that
a rerun reuses what is stored and recomputes only what changed. Imported by the loop, by
:mod:`uni.rekey` and by the freshness test of the committed results."""

from __future__ import annotations

from dataclasses import dataclass

from uni.data.selection import SELECTION_ORDER
from uni.engine.checks import method_kind, split_eval
from uni.methods import METHODS
from uni.models import checkpoint_digest
from uni.protocol_grid import expand_protocol_grid
from uni.records import config_hash

# method options that change how much is computed at once, not the numbers
SPEED_OPTIONS = frozenset({"internal_batch_size", "unlearn_chunk"})
# which images, how they are batched and what their records' split is called change no value
DATA_SELECTION = ("start", "limit", "shard", "num_shards", "batch_size", "num_workers",
                  "split_label", *SELECTION_ORDER)


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


def keyed_config(cfg: dict) -> dict:
    """The config a run keys its records on: the protocol grid expanded into eval entries
    (:mod:`uni.protocol_grid`) and each method entry's options as its method keys them
    given the run's other entries (:attr:`MethodSpec.keyed_options
    <uni.methods.MethodSpec>`: a control's ``distance: uni`` becomes the run's UNI
    options)."""
    cfg = expand_protocol_grid(cfg)
    methods = cfg.get("method")
    if not methods:
        return cfg
    keyed = {}
    for name, options in methods.items():
        kind = method_kind(name, options) if isinstance(options, dict) else None
        spec = METHODS.get(kind) if isinstance(kind, str) else None  # else: check_config's
        if spec is not None and spec.keyed_options is not None:
            options = spec.keyed_options(options, methods)
        keyed[name] = options
    return {**cfg, "method": keyed}

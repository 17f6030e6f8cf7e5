"""Datasets yielding :class:`Sample` ``(image_id, image in [0, 1], label or -1)``.

``build_dataset(name, data_config, ...)`` creates one by name: ``embedded`` (photos in
installed packages), ``folder`` (ImageNet layouts), ``hf`` (Hugging Face datasets),
``imagenet_c`` (the released ImageNet-C folders) and ``imagenet_c_synthetic`` (any of these
corrupted on the fly).

What belongs here: reading images and choosing which a run takes (:mod:`uni.data.selection`);
nothing that knows a model, a method or a metric (docs/architecture.md).
"""

from __future__ import annotations

import inspect

from uni.contract import Setting, check_settings, from_annotation, keyword_parameters
from uni.data.base import ImageDataset, Sample, collate, in_shard
from uni.data.embedded import EmbeddedDataset
from uni.data.folder import FolderDataset
from uni.data.hf import HFDataset
from uni.data.imagenet_c import ImageNetCFolder, ImageNetCSynthetic
from uni.data.selection import (
    DEFAULT_SUBSET,
    SAMPLES,
    SUBSETS,
    TUNE_SIZE,
    arrange,
    check_arrangement,
    resolve_sample,
    resolve_subset,
    tuning_items,
)
from uni.errors import ConfigError

DATASETS = {
    "embedded": EmbeddedDataset,
    "folder": FolderDataset,
    "hf": HFDataset,
    "imagenet_c": ImageNetCFolder,
}
SYNTHETIC = "imagenet_c_synthetic"
# which images of a dataset a run takes (:func:`build_dataset`)
SELECTION: dict[str, Setting] = {
    "limit": Setting(int, nullable=True, low=1),
    "start": Setting(int, low=0),
    "shard": Setting(int, low=0),
    "num_shards": Setting(int, low=1),
    # subset and order before start / limit (uni/data/selection.py)
    "subset": Setting(str, nullable=True, choices=(*SUBSETS, None)),
    "sample": Setting(str, nullable=True, choices=(*SAMPLES, None)),
    "sample_seed": Setting(int),
    "tune_size": Setting(int, low=1),
}


def data_settings(name: str) -> tuple[dict[str, Setting], bool]:
    """The options of dataset ``name``, typed by its constructor's annotations, with the
    image selection (:data:`SELECTION`), and whether it takes other options too (``hf``
    passes them to ``datasets.load_dataset``)."""
    cls = ImageNetCSynthetic if name == SYNTHETIC else DATASETS.get(name)
    if cls is None:
        return dict(SELECTION), True
    parameters = keyword_parameters(cls.__init__)
    typed = {k: from_annotation(p.annotation) for k, p in parameters.items()
             if k not in ("self", "data_config", "base")}
    if name == SYNTHETIC:  # the base dataset, by name, and its options
        typed.update(base=Setting(str), base_options=Setting(nullable=True))
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD
                     for p in inspect.signature(cls.__init__).parameters.values())
    return {**typed, **SELECTION}, open_ended


def check_data_options(options: dict, runner_options=()) -> None:
    """One-line errors for ``data.*``: an unknown option name (besides ``name`` and the
    ``runner_options``), a wrong type, or a selection that cannot work."""
    settings, open_ended = data_settings(options.get("name"))
    allowed = sorted({*settings, "name", *runner_options})
    unknown = sorted(set(options) - set(allowed))
    if unknown and not open_ended:
        raise ConfigError(f"data: unknown option(s) {unknown}; allowed: {allowed}")
    check_settings("data", options, settings)
    check_selection(**{k: options[k] for k in SELECTION if k in options})
    name = options.get("name")
    if name == SYNTHETIC:
        name = options.get("base")
    check_arrangement(name, options.get("subset"), options.get("sample"))


def check_selection(limit=None, shard=0, num_shards=1, start=0, subset=None, sample=None,
                    sample_seed=0, tune_size=TUNE_SIZE) -> None:
    """One-line errors for a selection that cannot work (types and ranges included)."""
    values = {"limit": limit, "start": start, "shard": shard, "num_shards": num_shards,
              "subset": subset, "sample": sample, "sample_seed": sample_seed,
              "tune_size": tune_size}
    check_settings("data", values, SELECTION)
    if not shard < num_shards:
        raise ConfigError(f"data.shard={shard} must be in [0, data.num_shards={num_shards})")


def build_dataset(
    name: str,
    data_config: dict,
    limit: int | None = None,
    shard: int = 0,
    num_shards: int = 1,
    start: int = 0,
    subset: str | None = None,
    sample: str | None = None,
    sample_seed: int = 0,
    tune_size: int = TUNE_SIZE,
    **options,
) -> ImageDataset:
    """Create a dataset by name, cut it to ``subset`` in ``sample`` order
    (:mod:`uni.data.selection`; ``None``: the dataset's default, as ``null`` in the run
    configs: a folder's evaluation subset in a keyed random order), keep ``limit`` images
    from the ``start``-th
    (0-based) and this shard's share of them. The dataset's ``selection`` describes the
    choice and ``tune_ids`` holds the tuning subset's ids (``None`` without subsets).

    ``imagenet_c_synthetic`` corrupts a base dataset (``base``: its name, ``base_options``)
    on the fly; subset, order, ``start`` and ``limit`` then apply to base images, each
    under every corruption x severity.
    """
    names = sorted([*DATASETS, SYNTHETIC])
    if name not in names:
        raise ConfigError(f"data={name!r} is not one of {names}")
    if name != SYNTHETIC:  # a synthetic set's base resolves its own
        sample = resolve_sample(name, sample)
    arrangement = {"subset": subset, "sample": sample, "sample_seed": sample_seed,
                   "tune_size": tune_size}
    check_selection(limit, shard, num_shards, start, **arrangement)
    if name == SYNTHETIC:
        base_name, base_options = options.pop("base"), options.pop("base_options", None) or {}
        base = build_dataset(base_name, data_config, limit, start=start,
                             **arrangement, **base_options)
        dataset = ImageNetCSynthetic(base, **options).select(shard, num_shards)
        dataset.selection, dataset.tune_ids = base.selection, base.tune_ids
        return dataset
    check_arrangement(name, subset, sample)
    if name == "hf":  # a stream is cut before it is read
        options["limit"] = None if limit is None else start + limit
    dataset = DATASETS[name](data_config=data_config, **options)
    subset = resolve_subset(name, subset, len(dataset.items), tune_size)
    dataset.tune_ids = None
    if name in DEFAULT_SUBSET or subset != "all":
        dataset.tune_ids = [i[0] for i in tuning_items(dataset.items, sample_seed, tune_size)]
    dataset.items = arrange(dataset.items, subset, sample, sample_seed, tune_size)
    dataset.selection = {**arrangement, "subset": subset, "dataset": name, "start": start,
                         "limit": limit, "shard": shard, "num_shards": num_shards}
    return dataset.select(shard, num_shards, limit, start)


__all__ = [
    "DATASETS", "SELECTION", "ImageDataset", "Sample", "build_dataset", "check_data_options",
    "check_selection", "collate", "data_settings", "in_shard",
]

"""Datasets yielding :class:`Sample` ``(image_id, image in [0, 1], label or -1)``.

``build_dataset(name, data_config, ...)`` creates one by name: ``embedded`` (photos in
installed packages), ``folder`` (ImageNet layouts), ``hf`` (Hugging Face datasets),
``imagenet_c`` (the released ImageNet-C folders) and ``imagenet_c_synthetic`` (any of these
corrupted on the fly).
"""

from __future__ import annotations

import inspect

from uni.contract import Setting, check_settings, from_annotation, keyword_parameters
from uni.data.base import ImageDataset, Sample, collate, in_shard
from uni.data.embedded import EmbeddedDataset
from uni.data.folder import FolderDataset
from uni.data.hf import HFDataset
from uni.data.imagenet_c import ImageNetCFolder, ImageNetCSynthetic
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


def check_selection(limit=None, shard=0, num_shards=1, start=0) -> None:
    """One-line errors for a selection that cannot work (types and ranges included)."""
    values = {"limit": limit, "start": start, "shard": shard, "num_shards": num_shards}
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
    **options,
) -> ImageDataset:
    """Create a dataset by name, keep ``limit`` images from the ``start``-th (0-based) and
    this shard's share of them.

    ``imagenet_c_synthetic`` corrupts a base dataset (``base``: its name, ``base_options``)
    on the fly; ``start`` and ``limit`` then count base images, each under every
    corruption x severity. ``start`` holds images out, e.g. those a method was tuned on.
    """
    names = sorted([*DATASETS, SYNTHETIC])
    if name not in names:
        raise ConfigError(f"data={name!r} is not one of {names}")
    check_selection(limit, shard, num_shards, start)
    if name == SYNTHETIC:
        base_name, base_options = options.pop("base"), options.pop("base_options", None) or {}
        base = build_dataset(base_name, data_config, limit, start=start, **base_options)
        return ImageNetCSynthetic(base, **options).select(shard, num_shards)
    if name == "hf":  # a stream is cut before it is read
        options["limit"] = None if limit is None else start + limit
    dataset = DATASETS[name](data_config=data_config, **options)
    return dataset.select(shard, num_shards, limit, start)


__all__ = [
    "DATASETS", "SELECTION", "ImageDataset", "Sample", "build_dataset", "check_data_options",
    "check_selection", "collate", "data_settings", "in_shard",
]

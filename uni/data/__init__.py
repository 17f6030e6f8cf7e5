"""Datasets yielding :class:`Sample` ``(image_id, image in [0, 1], label or -1)``.

``build_dataset(name, data_config, ...)`` creates one by name: ``embedded`` (photos in
installed packages), ``folder`` (ImageNet layouts), ``hf`` (Hugging Face datasets),
``imagenet_c`` (the released ImageNet-C folders) and ``imagenet_c_synthetic`` (any of these
corrupted on the fly).
"""

from __future__ import annotations

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
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit={limit} must be a positive integer or null")
    if start < 0:
        raise ConfigError(f"data.start={start} must be a non-negative integer")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"data.shard={shard} must be in [0, data.num_shards={num_shards})")
    if name == SYNTHETIC:
        base_name, base_options = options.pop("base"), options.pop("base_options", None) or {}
        base = build_dataset(base_name, data_config, limit, start=start, **base_options)
        return ImageNetCSynthetic(base, **options).select(shard, num_shards)
    if name == "hf":  # a stream is cut before it is read
        options["limit"] = None if limit is None else start + limit
    dataset = DATASETS[name](data_config=data_config, **options)
    return dataset.select(shard, num_shards, limit, start)


__all__ = ["DATASETS", "ImageDataset", "Sample", "build_dataset", "collate", "in_shard"]

"""What every dataset yields, and the shard split keyed on image ids (DESIGN §5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from uni import rng
from uni.data.transforms import Preprocess

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One image: a stable id, the image in [0, 1] at the model's size (``None`` when it
    could not be read), its label (-1 when unknown) and why it was skipped."""

    image_id: str
    image: torch.Tensor | None
    label: int = -1
    skip_reason: str | None = None
    meta: dict = field(default_factory=dict)  # extra record columns, e.g. corruption


def in_shard(image_id: str, shard: int, num_shards: int) -> bool:
    """Shards split by a hash of the id: stable under reordering and resume."""
    return num_shards <= 1 or rng.stable_seed(0, image_id, "shard") % num_shards == shard


class ImageDataset(torch.utils.data.Dataset):
    """A list of ``(image_id, source, label)``; ``open_source`` turns a source into a PIL
    image. Files that fail to decode become samples with a ``skip_reason``."""

    def __init__(self, items: Sequence[tuple[str, object, int]], data_config: dict):
        self.items = list(items)
        self.preprocess = Preprocess(data_config)

    def open_source(self, source) -> Image.Image:
        return Image.open(source)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_id, source, label = self.items[index]
        try:
            image = self.preprocess(self.open_source(source))
        except Exception as err:  # any undecodable input is a recorded skip, not a crash
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
            log.warning("skipping %s: %s", image_id, reason)
            return Sample(image_id, None, label, reason)
        return Sample(image_id, image, label)

    def select(self, shard: int = 0, num_shards: int = 1, limit: int | None = None,
               start: int = 0):
        """Keep ``limit`` items from the ``start``-th, then this shard's share of them (by
        id), so the shards of a limited run together hold exactly the unsharded run's
        images."""
        items = self.items[start:None if limit is None else start + limit]
        self.items = [item for item in items if in_shard(item[0], shard, num_shards)]
        return self


def collate(samples: list[Sample]) -> list[Sample]:
    return samples

"""What every dataset yields, and the shard split keyed on image ids (docs/design.md §5)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from uni import rng
from uni.data.transforms import Preprocess
from uni.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One image: a stable id, the image in [0, 1] at the model's size (``None`` when it
    could not be read), its label (-1 when unknown), why it was skipped and a digest of
    the file's bytes (``None`` for sources that are not files), which records carry so
    that a file replaced under the same name is recomputed."""

    image_id: str
    image: torch.Tensor | None
    label: int = -1
    skip_reason: str | None = None
    meta: dict = field(default_factory=dict)  # extra record columns, e.g. corruption
    digest: str | None = None


def image_id_of(relative: str | os.PathLike) -> str:
    """The id of a file at path ``relative``: the path itself when its name is UTF-8
    (every id of earlier runs), else an escaped text that is still valid UTF-8, so
    that it can be hashed and stored, and that maps back to the bytes
    (:func:`image_id_bytes`): each byte that is not UTF-8 becomes ``\\xNN`` and a
    backslash ``\\\\``. Names that need no escape hold no backslash, so no two files
    share an id."""
    text = os.fsdecode(os.fsencode(relative)).replace(os.sep, "/")
    if not any(c == "\\" or "\udc80" <= c <= "\udcff" for c in text):
        return text
    return "".join(
        "\\\\" if c == "\\" else f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff"
        else c for c in text
    )


def image_id_bytes(image_id: str) -> bytes:
    """The file name bytes an id of :func:`image_id_of` was made from."""
    if "\\" not in image_id:
        return image_id.encode()
    out, i = bytearray(), 0
    while i < len(image_id):
        if image_id[i] != "\\":
            out += image_id[i].encode()
            i += 1
        elif image_id[i + 1] == "x":
            out.append(int(image_id[i + 2:i + 4], 16))
            i += 4
        else:
            out += b"\\"
            i += 2
    return bytes(out)


def file_digest(data: bytes) -> str:
    """A short hash of a file's bytes: a record made from other bytes is not trusted."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def streamed_digest(path: Path) -> str:
    """:func:`file_digest` of a file's bytes, read in chunks."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def decode(data: bytes) -> Image.Image:
    """A lazily decoded image from a file's bytes (nothing is decoded before the size
    caps of :func:`~uni.data.transforms.check_size`)."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # PIL's message names the buffer's address: not stable
        raise UnidentifiedImageError("cannot identify image file") from None


def in_shard(image_id: str, shard: int, num_shards: int) -> bool:
    """Shards split by a hash of the id: stable under reordering and resume."""
    return num_shards <= 1 or rng.stable_seed(0, image_id, "shard") % num_shards == shard


class ImageDataset(torch.utils.data.Dataset):
    """A list of ``(image_id, source, label)``; ``open_source`` turns a source into a PIL
    image. Files that fail to decode become samples with a ``skip_reason``."""

    def __init__(self, items: Sequence[tuple[str, object, int]], data_config: dict):
        self.items = list(items)
        self.preprocess = Preprocess(data_config)

    def open_source(self, source) -> tuple[object, str | None]:
        """What :meth:`__getitem__` decodes (the file's bytes, or a PIL image) and the
        digest of the file; the bytes are read once, so the digest costs no second read,
        and it is known even for a file that turns out not to be an image. A file whose
        header is no image is never read whole: its digest is streamed (a 200 MB file of
        something else costs no 200 MB of memory before it is skipped)."""
        path = Path(source)
        try:
            Image.open(path).close()  # the header only
        except Exception as err:
            if isinstance(err, UnidentifiedImageError):  # :func:`decode`'s stable message
                err = UnidentifiedImageError("cannot identify image file")
            err.digest = streamed_digest(path)  # the skip's record still carries it
            raise err from None
        data = path.read_bytes()
        return data, file_digest(data)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_id, source, label = self.items[index]
        digest = None
        try:
            data, digest = self.open_source(source)
            image = self.preprocess(data if isinstance(data, Image.Image) else decode(data))
        except Exception as err:  # any undecodable input is a recorded skip, not a crash
            digest = getattr(err, "digest", digest)
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
            log.warning("skipping %s: %s", image_id, reason)
            return Sample(image_id, None, label, reason, digest=digest)
        return Sample(image_id, image, label, digest=digest)

    def select(self, shard: int = 0, num_shards: int = 1, limit: int | None = None,
               start: int = 0):
        """Keep ``limit`` items from the ``start``-th, then this shard's share of them (by
        id), so the shards of a limited run together hold exactly the unsharded run's
        images. A ``start`` beyond the data is a one-line :class:`ConfigError`."""
        if start and start >= len(self.items):
            raise ConfigError(f"data.start={start} is beyond the data ({len(self.items)} "
                              f"images: data.start may be 0 to {len(self.items) - 1})")
        items = self.items[start:None if limit is None else start + limit]
        self.items = [item for item in items if in_shard(item[0], shard, num_shards)]
        return self


def collate(samples: list[Sample]) -> list[Sample]:
    return samples

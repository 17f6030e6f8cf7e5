"""ImageNet-style folders: ``root/<wnid>/*.JPEG`` or a flat ``root/<wnid>_<anything>.JPEG``.

Labels are the index of the WordNet id in timm's sorted list of the 1000 ImageNet
synsets; files whose class cannot be told get label -1 (explained at the prediction).
"""

from __future__ import annotations

import re
from pathlib import Path

from timm.data import ImageNetInfo

from uni.data.base import ImageDataset, image_id_of
from uni.errors import ConfigError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
WNID = re.compile(r"^(n\d{8})")


def imagenet_label_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}


def label_of(relative: Path, synsets: dict[str, int]) -> int:
    """From the parent folder's name (nested layout) or the file name's prefix (flat)."""
    for part in (*relative.parts[:-1][::-1], relative.name):
        match = WNID.match(part)
        if match and match.group(1) in synsets:
            return synsets[match.group(1)]
    return -1


def list_images(root: Path) -> list[Path]:
    """The image files below ``root``; a symlink to a file outside ``root`` (or through a
    linked directory) is not followed: the data are what lies under ``data.root``."""
    inside = root.resolve()
    return sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        and p.resolve().is_relative_to(inside)
    )


class FolderDataset(ImageDataset):
    """Every image file below ``root``; ``image_id`` is its path relative to ``root``
    (names that are not UTF-8 escaped: :func:`~uni.data.base.image_id_of`)."""

    def __init__(self, root: str | Path | None, data_config: dict):
        if root in (None, "", "???"):  # no default folder: only the user knows where it is
            raise ConfigError("data.root is not set: pass data.root=PATH, the image folder (the "
                              "development-split experiments read UNI_DEV_DATA=PATH)")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"data.root={str(root)!r} is not a directory")
        files = list_images(root)
        if not files:
            raise ConfigError(
                f"data.root={str(root)!r} holds no image files ({sorted(IMAGE_SUFFIXES)})"
            )
        synsets = imagenet_label_index()
        items = []
        for path in files:
            relative = path.relative_to(root)
            items.append((image_id_of(relative), path, label_of(relative, synsets)))
        super().__init__(items, data_config)

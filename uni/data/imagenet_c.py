"""ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations"): 19 corruptions x 5 severities.

``ImageNetCSynthetic`` corrupts any base dataset on the fly with the maintained
``imagecorruptions`` package (PyPI ``imagecorruptions-imaug``), after the model's resize and
centre crop as in the released set, seeded per ``(seed, image_id)``. ``ImageNetCFolder``
reads the released layout ``root/<corruption>/<severity>/<wnid>/*.JPEG``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uni import rng
from uni.data.base import ImageDataset, Sample
from uni.data.folder import FolderDataset
from uni.errors import ConfigError

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "gaussian_blur",
    "spatter", "saturate",
)
# the corruptions of the paper's figures
PAPER_CORRUPTIONS = (
    "brightness", "saturate", "gaussian_blur", "defocus_blur", "gaussian_noise", "shot_noise",
)
SEVERITIES = (1, 2, 3, 4, 5)


def check_corruptions(corruptions: Sequence[str], severities: Sequence[int]) -> None:
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f"data.corruptions: {unknown} not in {list(CORRUPTIONS)}")
    if not corruptions:
        raise ConfigError("data.corruptions is empty")
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ConfigError(f"data.severities={list(severities)} must be within {list(SEVERITIES)}")


def corrupt(image: torch.Tensor, corruption: str, severity: int, seed: int) -> torch.Tensor:
    """Corrupt a ``(3, H, W)`` image in [0, 1]; the package's numpy randomness is seeded."""
    from imagecorruptions import corrupt as apply

    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        out = apply(array, corruption_name=corruption, severity=severity)
    finally:
        np.random.set_state(state)
    out = np.asarray(out, dtype=np.float32)[: array.shape[0], : array.shape[1]] / 255
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).clamp(0, 1)


class ImageNetCSynthetic(ImageDataset):
    """Every base image under every ``corruption x severity``; ids ``<base id>|<c>/<s>``."""

    def __init__(
        self,
        base: ImageDataset,
        corruptions: Sequence[str] = PAPER_CORRUPTIONS,
        severities: Sequence[int] = SEVERITIES,
        seed: int = 0,
    ):
        check_corruptions(corruptions, severities)
        self.base, self.seed = base, seed
        self.base_index = {image_id: i for i, (image_id, _, _) in enumerate(base.items)}
        self.items = [
            (f"{image_id}|{c}/{s}", (image_id, c, int(s)), label)
            for image_id, _, label in base.items
            for c in corruptions
            for s in severities
        ]
        self.preprocess = base.preprocess

    def __getitem__(self, index: int) -> Sample:
        image_id, (base_id, corruption, severity), label = self.items[index]
        meta = {"corruption": corruption, "severity": severity, "base_image_id": base_id}
        clean = self.base[self.base_index[base_id]]
        if clean.image is None:
            return Sample(image_id, None, label, clean.skip_reason, meta, clean.digest)
        seed = rng.stable_seed(self.seed, image_id, "corruption")
        image = corrupt(clean.image, corruption, severity, seed)
        return Sample(image_id, image, label, None, meta, clean.digest)


class ImageNetCFolder(FolderDataset):
    """The released layout ``root/<corruption>/<severity>/<wnid>/*.JPEG``."""

    def __init__(
        self,
        root: str | Path,
        data_config: dict,
        corruptions: Sequence[str] = PAPER_CORRUPTIONS,
        severities: Sequence[int] = SEVERITIES,
    ):
        check_corruptions(corruptions, severities)
        super().__init__(root, data_config)
        wanted = {f"{c}/{s}" for c in corruptions for s in severities}
        self.items = [item for item in self.items if "/".join(item[0].split("/")[:2]) in wanted]
        if not self.items:
            raise ConfigError(
                f"data.root={str(root)!r} holds no images under <corruption>/<severity>/ for "
                f"{sorted(wanted)[:3]}..."
            )

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        corruption, severity = sample.image_id.split("/")[:2]
        sample.meta = {"corruption": corruption, "severity": int(severity)}
        return sample

"""Decoding and preprocessing: any image file to an RGB tensor in [0, 1] at the model's size.

Preprocessing follows the model's timm data config: resize the shorter side to
``size / crop_pct`` (bicubic by default) and centre-crop ``size``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

# Decompression-bomb guard stays on, but at a size real photos reach (12000^2).
Image.MAX_IMAGE_PIXELS = 200_000_000
# Large images are decoded at a reduced scale (JPEG draft mode) before resizing.
DRAFT_FACTOR = 2


def to_rgb(image: Image.Image) -> Image.Image:
    """Respect EXIF orientation and convert every mode (L, LA, P, RGBA, CMYK, I;16, I, F) to
    8-bit RGB; transparency is composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


class Preprocess:
    """PIL image -> float tensor ``(3, H, W)`` in [0, 1], from a timm data config."""

    def __init__(self, data_config: dict):
        self.size = tuple(data_config["input_size"][1:])
        crop_pct = data_config.get("crop_pct") or 1.0
        self.resize = int(math.floor(min(self.size) / crop_pct))
        self.interpolation = InterpolationMode(data_config.get("interpolation", "bicubic"))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.format == "JPEG":
            # decode big JPEGs at a fraction of their size: bounded memory, same result
            image.draft("RGB", (self.resize * DRAFT_FACTOR, self.resize * DRAFT_FACTOR))
        image.load()  # a truncated or corrupt file fails here
        image = to_rgb(image)
        image = TF.resize(image, self.resize, interpolation=self.interpolation, antialias=True)
        image = TF.center_crop(image, list(self.size))
        return TF.to_tensor(image).clamp(0, 1)


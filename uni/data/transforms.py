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

# PIL's own decompression-bomb guard (checked when a file is opened) stays on, at a
# size real photos reach (12000^2); JPEGs that big are then decoded at a reduced scale.
Image.MAX_IMAGE_PIXELS = 200_000_000
# Large images are decoded at a reduced scale (JPEG draft mode) before resizing.
DRAFT_FACTOR = 2
# Hard caps, checked on the header's size before any pixel is decoded: an image over
# one is skipped with the reason. Decoded pixels (after JPEG draft): 64 M (8192^2) RGB
# pixels are 192 MB, and at most a few such buffers exist at once. Aspect ratio: resizing
# the short side to the model's size scales the long side by the same factor, so a
# 20000x1 strip would become 5 G pixels; 1:50 keeps any panorama.
MAX_DECODED_PIXELS = 8192 * 8192
MAX_ASPECT_RATIO = 50
MAX_RESIZED_PIXELS = 32_000_000


class ImageTooLarge(ValueError):
    """An image whose decoding or resizing would exceed a cap (:func:`check_size`)."""


def check_size(width: int, height: int, resize: int) -> None:
    """Raise :class:`ImageTooLarge` naming the cap if a ``width x height`` image would
    exceed one when decoded, or when its short side is resized to ``resize``."""
    short, long = sorted((width, height))
    if short < 1:
        raise ImageTooLarge(f"{width}x{height} image has no pixels")
    if width * height > MAX_DECODED_PIXELS:
        raise ImageTooLarge(f"{width}x{height} image exceeds the cap of "
                            f"{MAX_DECODED_PIXELS:,} decoded pixels")
    if long > MAX_ASPECT_RATIO * short:
        raise ImageTooLarge(f"{width}x{height} image exceeds the aspect-ratio cap of "
                            f"1:{MAX_ASPECT_RATIO}")
    resized = resize * math.ceil(long * resize / short)
    if resized > MAX_RESIZED_PIXELS:
        raise ImageTooLarge(f"{width}x{height} image would be resized to {resized:,} pixels, "
                            f"over the cap of {MAX_RESIZED_PIXELS:,}")


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
        check_size(*image.size, self.resize)  # from the header: nothing decoded yet
        image.load()  # a truncated or corrupt file fails here
        image = to_rgb(image)
        image = TF.resize(image, self.resize, interpolation=self.interpolation, antialias=True)
        image = TF.center_crop(image, list(self.size))
        return TF.to_tensor(image).clamp(0, 1)


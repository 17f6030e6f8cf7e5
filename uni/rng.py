"""Randomness keyed on ``(seed, image_id)`` (docs/design.md §5).

Every random draw for an image (noise baselines, MuFidelity subsets, PGD random
starts, attacks, corruptions) comes from a generator derived from the run seed, the
image's stable id and the purpose of the draw, so an image gets the same numbers
alone, in any batch, in any shard and after a resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def stable_seed(seed: int, image_id: str, purpose: str) -> int:
    """A 63-bit integer that depends only on its arguments (not on Python's hash salt).
    Any ``str`` is a valid id: lone surrogates (Python's stand-in for file-name bytes
    that are not UTF-8) are hashed rather than failing; UTF-8 ids hash as before."""
    text = f"{seed}\x1f{image_id}\x1f{purpose}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def torch_generator(seed: int, image_id: str, purpose: str) -> torch.Generator:
    """A CPU generator for one image; draw on the CPU and move, so devices agree."""
    return torch.Generator().manual_seed(stable_seed(seed, image_id, purpose))


def per_image(
    draw, image_ids: Sequence[str], seed: int, purpose: str, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Stack ``draw(generator)`` over the images of a batch, each with its own generator."""
    return torch.stack([draw(torch_generator(seed, i, purpose)) for i in image_ids]).to(device)


def content_ids(x: torch.Tensor) -> list[str]:
    """Ids for images given without one: a hash of their pixels, so the same image always
    gets the same id whatever batch it is in."""
    flat = x.detach().to("cpu", torch.float32).contiguous().reshape(x.shape[0], -1).numpy()
    return ["sha:" + hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in flat]

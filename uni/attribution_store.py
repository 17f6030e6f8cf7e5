"""Stored explanations: each (method entry's explanation key, image) computed once.

A method's attributions, first-draw baselines, per-image diagnostics and ``F_c`` along its
path are saved per image as a safetensors file under
``<root>/<explanation key>/<image key>.safetensors`` (written atomically, like the
records), where the explanation key is :attr:`uni.engine.identity.RecordKeys.explanations`
(model, data identity, seed, output, target, the method's options) and the image key a
hash of the image id. A file counts only for the same image bytes (its
``content_digest``, when the source has one) and for the tensors it was written with (a
digest of them in its metadata; files without one are recomputed). The runner reads
what is stored before it explains, so adding a metric, or rerunning a killed batch, or
another experiment with the same model, data and method options sharing the store
(``attribution_store``), does not explain again. Regenerable: keep stores out of git
(``.gitignore``: ``attributions/``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from uni.methods.path import Attribution
from uni.records import atomic_write

_DIAGNOSTIC = "diagnostic/"


class AttributionStore:
    """Explanations under ``root`` (module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str, image_id: str) -> Path:
        name = hashlib.blake2b(image_id.encode("utf-8", "surrogateescape"),
                               digest_size=12).hexdigest()
        return self.root / key / f"{name}.safetensors"

    def get(self, key: str, image_id: str, digest: str | None = None) -> dict | None:
        """The stored tensors of one image (``attributions``, ``baselines``,
        ``path_scores``, ``diagnostic/<name>``), or ``None``: not stored, stored for other
        bytes, or unreadable (a file cut short is recomputed, never fatal)."""
        path = self._path(key, image_id)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), "pt") as opened:
                meta = opened.metadata() or {}
                tensors = {name: opened.get_tensor(name) for name in opened.keys()}
        except (OSError, SafetensorError, ValueError):
            return None
        if meta.get("image_id") != image_id or meta.get("tensors") != tensors_digest(tensors):
            return None  # another image's, or tensors altered (or stored without a digest)
        if digest is not None and meta.get("digest") not in (None, "", digest):
            return None
        return tensors

    def put(self, key: str, image_id: str, digest: str | None, tensors: dict) -> None:
        """Store one image's tensors (CPU copies), atomically."""
        path = self._path(key, image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # clones: safetensors refuses views of one storage (diagnostics that alias)
        data = {k: v.detach().to("cpu").clone() for k, v in tensors.items()}
        meta = {"image_id": image_id, "digest": digest or "", "tensors": tensors_digest(data)}
        atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata=meta))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of named tensors (names, dtypes, shapes, bytes): a stored file whose tensors
    were altered, its metadata kept, is recomputed, not trusted."""
    digest = hashlib.blake2b(digest_size=12)
    for name in sorted(tensors):
        value = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def split(result: Attribution) -> list[dict]:
    """One dict of tensors per image of ``result`` (what :meth:`AttributionStore.put`
    takes)."""
    rows = []
    for i in range(result.attributions.shape[0]):
        row = {"attributions": result.attributions[i]}
        if result.baselines is not None:
            row["baselines"] = result.baselines[i]
        if result.path_scores is not None:
            row["path_scores"] = result.path_scores[i]
        row.update({_DIAGNOSTIC + k: v[i].reshape(()) for k, v in result.diagnostics.items()})
        rows.append(row)
    return rows


def join(rows: list[dict], device: torch.device) -> Attribution:
    """The :class:`Attribution` of a batch from per-image dicts (stored or just
    computed): each part present only if every image has it."""

    def stacked(name):
        if all(name in row for row in rows):
            return torch.stack([row[name] for row in rows]).to(device)
        return None

    names = set.intersection(*(set(row) for row in rows))
    diagnostics = {n.removeprefix(_DIAGNOSTIC): stacked(n) for n in sorted(names)
                   if n.startswith(_DIAGNOSTIC)}
    return Attribution(stacked("attributions"), stacked("baselines"), diagnostics,
                       stacked("path_scores"))

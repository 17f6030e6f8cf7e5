"""What the figures need, kept beside a run's records (``figures.pt``): for the first
``figures.images`` images of a run, the image and, per method, the attributions, the
baseline, ``F_c`` along the path and the deletion / insertion curves.

Saved after every batch that kept something (a killed run loses none of it), tagged with
the methods' config hashes (data of another config is never mixed in), and merged under
the run directory's lock with what other processes (shards) saved.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from uni.records import FIGURES_FILE, atomic_write, exclusive

KINDS = ("attributions", "baselines", "path_scores", "deletion_curves", "insertion_curves",
         "targets", "probabilities")  # the last two: the image's, under method ""


class FigureStore:
    """``ids``: the images this process keeps figure data for (in data order);
    ``own_ids``: every image this process runs (data saved earlier for any other image
    belongs to another shard and is left as it is); ``hashes``: method -> config hash."""

    def __init__(self, run_dir: str | Path, ids: list[str], own_ids: list[str],
                 hashes: dict[str, str]):
        self.path = Path(run_dir) / FIGURES_FILE
        self.ids, self.own_ids, self.hashes = list(ids), set(own_ids), dict(hashes)
        self.kept: dict[tuple[str, str, str], torch.Tensor] = {}  # (kind, method, id)
        self.changed = False
        self.kept.update(self._saved(own=True))

    def has(self, method: str, image_id: str) -> bool:
        return ("attributions", method, image_id) in self.kept

    def keep(self, kind: str, method: str, image_id: str, value: torch.Tensor) -> None:
        self.kept[(kind, method, image_id)] = value.detach().float().cpu()
        self.changed = True

    def _saved(self, own: bool) -> dict:
        """Entries of the saved file (if it is of this config): of this process's images
        if ``own``, else of the other processes' images."""
        if not self.path.exists():
            return {}
        try:
            data = torch.load(self.path, weights_only=True)
        except Exception as err:  # cut short by a crash: recomputed, never fatal
            warnings.warn(f"ignoring unreadable {self.path.name} ({type(err).__name__})")
            return {}
        if data.get("config_hashes") != self.hashes:
            return {}
        ids = data["image_ids"]
        keep = [(n, i) for n, i in enumerate(ids) if (i in self.own_ids) == own]
        kept = {("images", "", i): data["images"][n] for n, i in keep}
        for kind in KINDS:
            for method, stack in data.get(kind, {}).items():
                kept.update({(kind, method, i): stack[n] for n, i in keep})
        return kept

    def save(self) -> None:
        """Write ``figures.pt`` if something was kept since the last save."""
        if not self.changed:
            return
        with exclusive(self.path.parent):
            kept = {**self._saved(own=False), **self.kept}
            others = [k[2] for k in kept if k[0] == "images" and k[2] not in self.own_ids]
            ids = [i for i in [*self.ids, *dict.fromkeys(others)]
                   if any(k[0] == "attributions" and k[2] == i for k in kept)]
            if ids:
                data = {"config_hashes": self.hashes, "image_ids": ids,
                        "images": torch.stack([kept[("images", "", i)] for i in ids])}
                for kind in KINDS:
                    methods = sorted({k[1] for k in kept if k[0] == kind})
                    data[kind] = {m: torch.stack([kept[(kind, m, i)] for i in ids])
                                  for m in methods if all((kind, m, i) in kept for i in ids)}
                atomic_write(self.path, lambda tmp: torch.save(data, tmp))
        self.changed = False

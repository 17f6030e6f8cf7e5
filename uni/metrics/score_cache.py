"""A memo of ``F_c`` on perturbed images, so that several protocols scored on one batch
(``experiment=protocol_sensitivity``) run the model once per distinct perturbed image.

Each perturbed image is named by a key that says what it is, built from content: hashes
of the image, of the fill image (so two fills that put the same pixels there share, e.g.
``grey`` and ``model_zero`` for a model normalised with mean 0.5, as EfficientNet-Lite)
and, for deletion / insertion, of the attributions, the target class and which cells or
how many pixels are changed. So

- MuFidelity under ``pearson`` and ``spearman`` (and with or without ``nan_to_zero``)
  shares its perturbed images, and so do all methods: its subsets depend on the image,
  not on the attributions;
- a 10-step deletion / insertion curve reuses the 100-step curve's images: its pixel
  counts ``floor(k * HW / 10) = floor(10k * HW / 100)`` are among them;
- ``prob`` and ``logit`` come from the same forward pass (both are stored).

A value read from the memo is the one the model gave when it was first computed, so
results equal those without the memo up to float rounding from how rows are grouped
into forward passes (none when the first request is the largest). The runner makes one
memo per batch; a metric called without one computes everything, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence

import torch

from uni.metrics._common import scores_by_output, scores_of_rows
from uni.models import OUTPUTS


class ScoreCache:
    """``F_c`` under every output of perturbed images, by key (see the module doc)."""

    def __init__(self) -> None:
        self._scores: dict[Hashable, tuple[float, ...]] = {}
        self._prints: dict[int, tuple[torch.Tensor, list[str]]] = {}
        self.computed = 0  # perturbed images the model ran on
        self.reused = 0  # perturbed images read from the memo

    def fingerprints(self, tensor: torch.Tensor, remember: bool = True) -> list[str]:
        """A hash of each row's values, shape and dtype. ``remember``: kept per tensor
        object (and the object kept alive, so its ``id`` cannot be reused), for tensors
        that many calls share (the batch's images, a method's attributions)."""
        known = self._prints.get(id(tensor))
        if known is not None and known[0] is tensor:
            return known[1]
        flat = tensor.detach().to("cpu").contiguous()
        head = f"{tuple(flat.shape[1:])}{flat.dtype}".encode()
        prints = [hashlib.blake2b(head + row.numpy().tobytes(), digest_size=12).hexdigest()
                  for row in flat]
        if remember:
            self._prints[id(tensor)] = (tensor, prints)
        return prints

    def scores(
        self,
        model: torch.nn.Module,
        keys: Sequence[Hashable],
        rows_of: Callable[[torch.Tensor], torch.Tensor],
        target: torch.Tensor,
        output: str,
        batch_size: int,
    ) -> torch.Tensor:
        """``F_c`` (``output``) of the ``len(keys)`` images ``rows_of(index)`` builds, for
        ``index`` a tensor of row numbers; only rows whose key is new reach the model,
        ``batch_size`` at a time and in row order."""
        missing = [i for i, key in enumerate(keys) if key not in self._scores]
        if missing:
            index = torch.tensor(missing, dtype=torch.long, device=target.device)
            new = scores_by_output(
                model, lambda rows: rows_of(index[rows]), target[index], OUTPUTS, batch_size
            )
            values = torch.stack([new[o] for o in OUTPUTS], dim=1).tolist()
            for i, value in zip(missing, values):
                self._scores[keys[i]] = tuple(value)
        self.computed += len(missing)
        self.reused += len(keys) - len(missing)
        column = OUTPUTS.index(output)
        return torch.tensor([self._scores[key][column] for key in keys],
                            dtype=torch.float32, device=target.device)


def perturbed_scores(
    model: torch.nn.Module,
    rows_of: Callable,
    target: torch.Tensor,
    output: str,
    batch_size: int,
    cache: ScoreCache | None = None,
    keys: Callable[[], Sequence[Hashable]] | None = None,
) -> torch.Tensor:
    """``F_c`` of the images ``rows_of(rows)`` builds (``rows`` a slice or an index
    tensor): through ``cache`` under the keys ``keys()`` names them by, or all computed."""
    if cache is None:
        return scores_of_rows(model, rows_of, target, output, batch_size)
    return cache.scores(model, keys(), rows_of, target, output, batch_size)

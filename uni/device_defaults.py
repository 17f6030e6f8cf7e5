"""Settings whose best value depends on the device the run uses: ``${by_device:...}`` in
the configs picks a value from a ``{cpu: ..., cuda: ...}`` mapping (``batch_sizes`` in
``conf/config.yaml``) for the run's ``device``; ``auto`` is ``cuda`` where a CUDA
device is available. Batch and chunk sizes change how much is computed at once, never a
record's value or key."""

from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "by_device"


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` for a ``device`` setting (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``); a name that is neither is left to the runner's one-line check."""
    if device == "auto":
        import torch  # only here: the command line answers without loading torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if str(device).startswith("cuda") else "cpu"


def by_device(device: str, values):
    """``values[cpu|cuda]`` for ``device``."""
    return values[device_kind(device)]


def register() -> None:
    """Make ``${by_device:${device},<mapping>}`` available to every config composed or
    loaded (stored ``.hydra/config.yaml`` files keep the interpolation)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, by_device)

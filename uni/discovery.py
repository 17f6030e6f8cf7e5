"""Registries fill themselves by import (as timm's ``@register_model``): a registry package
(:mod:`uni.methods`, :mod:`uni.metrics`, :mod:`uni.experiments`) imports each of its public
modules, which register what they define, so that adding one is adding its file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (found on ``path``, its ``__path__``) whose name
    does not start with ``_``: the private ones are imported by the modules that use them."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")

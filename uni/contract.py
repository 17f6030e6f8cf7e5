"""The config contract: what a setting may hold, checked once before any work.

A :class:`Setting` is a type (``bool``, ``int``, ``float`` or ``str``; the annotation of
the parameter that takes the setting, :func:`from_annotation`), whether ``null`` is
allowed, and a range or a set of allowed values. Values are checked, never converted:
``data.limit=abc`` or ``method.uni.eps=4/255`` (a string) is a one-line
:class:`~uni.errors.ConfigError` naming the setting, not a traceback after the model
has loaded.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace

from uni.errors import ConfigError

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Setting:
    """What one setting may hold: ``type`` (``None``: anything), ``nullable``, and
    ``low``/``high`` bounds (``low_open``: ``> low`` rather than ``>= low``; numbers with
    bounds must be finite) or ``choices``."""

    type: type | None = None
    nullable: bool = False
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    choices: tuple | None = None

    def describe(self) -> str:
        text = _KINDS.get(self.type, "a value")
        bounded = self.low is not None or self.high is not None
        if self.type in (int, float) and bounded:
            text = "an integer" if self.type is int else "a finite number"
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low:g}"
            else:
                text += f" <= {self.high:g}"
        return text + (" or null" if self.nullable else "")

    def check(self, key: str, value) -> None:
        """Raise a one-line :class:`ConfigError` naming ``key`` if ``value`` breaks it."""
        if value is None:
            if self.nullable or self.type is None and self.choices is None:
                return
            if self.choices is None:
                raise ConfigError(f"{key}=null must be {self.describe()}")
        if self.choices is not None:
            if value is not None and not isinstance(value, (list, dict)) \
                    and value in self.choices:
                return
            shown = "null" if value is None else repr(value)
            raise ConfigError(f"{key}={shown} is not one of {list(self.choices)}")
        if not self._typed(value) or not self._in_range(value):
            raise ConfigError(f"{key}={value!r} must be {self.describe()}")

    def _typed(self, value) -> bool:
        if self.type is None:
            return True
        if self.type is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.type is float:
            return isinstance(value, (int, float))
        return isinstance(value, self.type)

    def _in_range(self, value) -> bool:
        if self.type not in (int, float) or (self.low is None and self.high is None):
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


def bounded(low: float | None = None, high: float | None = None, *, low_open: bool = False,
            ) -> Setting:
    """A range, to be combined with a type (:func:`merge`)."""
    return Setting(low=low, high=high, low_open=low_open)


def one_of(choices) -> Setting:
    return Setting(choices=tuple(choices))


def from_annotation(annotation) -> Setting:
    """The type of a parameter annotated ``int``, ``float``, ``str``, ``bool`` or one of
    these ``| None``; anything else (or no annotation) allows any value."""
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    args = typing.get_args(annotation) if union else (annotation,)
    kinds = [a for a in args if a is not type(None)]
    kind = kinds[0] if len(kinds) == 1 and kinds[0] in _KINDS else None
    return Setting(kind, nullable=type(None) in args or kind is None)


def merge(typed: Setting, limits: Setting | None) -> Setting:
    """``typed``'s type and nullability with ``limits``' range or choices."""
    if limits is None:
        return typed
    return replace(limits, type=typed.type, nullable=typed.nullable or limits.nullable)


def keyword_parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """``fn``'s parameters that can be passed by keyword, annotations evaluated; for a
    :func:`functools.partial`, those it does not bind."""
    bound: set[str] = set()
    while isinstance(fn, functools.partial):
        bound |= set(fn.keywords)
        fn = fn.func
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        name: p for name, p in inspect.signature(fn, eval_str=True).parameters.items()
        if p.kind in kinds and name not in bound
    }


def check_settings(prefix: str, values: dict, settings: dict[str, Setting]) -> None:
    """Check each of ``values`` that has a :class:`Setting` (keys ``<prefix>.<name>``)."""
    for name, value in values.items():
        if name in settings:
            settings[name].check(f"{prefix}.{name}" if prefix else name, value)


def check_names(prefix: str, values: dict, allowed) -> None:
    """A one-line :class:`ConfigError` for names in ``values`` that are not ``allowed``:
    a misspelt ``+key=value`` is refused, not silently ignored."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        where = f"{prefix}: unknown option(s)" if prefix else "unknown setting(s)"
        raise ConfigError(f"{where} {unknown}; allowed: {sorted(allowed)}")

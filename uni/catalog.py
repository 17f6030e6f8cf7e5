"""The registries' metadata without torch: what analysis of stored records reads.

Each method or metric file declares its metadata next to its code as a module-level
literal, ``CATALOG``: a list of entries, one per name it registers (a family, such as
``ig_<baseline>``, lists each member), that its runtime registration
(:func:`uni.methods._registry.register_method`, :func:`uni.metrics._registry.register_metric`)
reads. This module reads the same literals from the package's source files without
importing them (as setuptools and flit read ``__version__``), so tables, statistics, claims
and the report know every method's display order and group and every metric's scores,
directions, order and citation without loading torch or timm.

A method entry: ``name``, ``order`` (display position: tables' rows), ``group``
(:data:`GROUPS`: an attribution method, a control of UNI, or a floor that reads nothing of
the model) and, optionally, ``control_entries``: names of method entries (configs with a
``kind``) that are controls of it. A metric entry: ``name``, ``order`` (tables' columns),
``scores`` (``[pattern, direction]`` of the record names it covers), ``citation``, and
for a metric the report derives, ``derived_from`` and ``combine`` (a rule of
:data:`COMBINE`); ``diagnostic``: a per-image diagnostic of the methods' records.

A ``CATALOG`` is a literal: strings, numbers, lists, dicts, ``None``/``True``/``False``,
f-strings and ``+`` of them, and names of other such constants of its module or imported
from another ``uni`` module (a shared citation); nothing is called.

A method it has no entry for (a user's, registered from their own module) is an
attribution method displayed after the known ones, by name.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from uni.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent  # the directory that holds the package
NAME = "CATALOG"  # the module-level literal a method or metric file declares
GROUPS = ("attribution method", "control", "floor")
DIRECTIONS = ("higher", "lower", None)  # None: a side value that ranks nothing
# how a derived metric combines the records it is derived from
COMBINE: dict[str, Callable] = {"difference": operator.sub}
# what may follow a metric's name in a record's name (uni.metrics' docstring)
_QUALIFIER = r"(?:_.*|\[.*\])?"


@dataclass(frozen=True)
class Score:
    """One kind of value records hold: ``pattern``, a regular expression for the record
    names (a family such as ``stability_l1@\\d+``), and ``direction``: ``higher`` or
    ``lower`` is better, or ``None`` for a side value (an attack's perturbation size)."""

    pattern: str
    direction: str | None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction={self.direction!r} is not one of {DIRECTIONS}")

    def matches(self, name: str, qualified: bool) -> bool:
        return re.fullmatch(self.pattern + (_QUALIFIER if qualified else ""), name) is not None


def _fields(entry: dict, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(entry, dict) or not required <= set(entry) or set(entry) - allowed:
        raise ValueError(f"catalog entry {entry!r}: needs {sorted(required)}, may also hold "
                         f"{sorted(allowed - required)}")
    return entry


@dataclass(frozen=True)
class MethodInfo:
    """A method's metadata (the module docstring); ``order`` ``inf``: not in the catalog."""

    name: str
    order: float = math.inf
    group: str = GROUPS[0]
    control_entries: tuple[str, ...] = ()

    @classmethod
    def from_entry(cls, entry: dict) -> MethodInfo:
        entry = _fields(entry, {"name", "order", "group", "control_entries"}, {"name", "order"})
        if entry.get("group", GROUPS[0]) not in GROUPS:
            raise ValueError(f"method {entry['name']!r}: group={entry['group']!r} is not one "
                             f"of {GROUPS}")
        return cls(entry["name"], entry["order"], entry.get("group", GROUPS[0]),
                   tuple(entry.get("control_entries", ())))


@dataclass(frozen=True)
class MetricInfo:
    """A metric's metadata (the module docstring). ``combine``: the function of
    :data:`COMBINE` that derives it from the ``derived_from`` records."""

    name: str
    order: float
    scores: tuple[Score, ...]
    citation: str
    derived_from: tuple[str, ...] = ()
    combine: Callable | None = None
    diagnostic: bool = False

    @classmethod
    def from_entry(cls, entry: dict) -> MetricInfo:
        entry = _fields(entry, {"name", "order", "scores", "citation", "derived_from",
                                "combine", "diagnostic"}, {"name", "order", "scores", "citation"})
        rule = entry.get("combine")
        if rule is not None and rule not in COMBINE:
            raise ValueError(f"metric {entry['name']!r}: combine={rule!r} is not one of "
                             f"{sorted(COMBINE)}")
        return cls(entry["name"], entry["order"],
                   tuple(Score(pattern, direction) for pattern, direction in entry["scores"]),
                   entry["citation"], tuple(entry.get("derived_from", ())),
                   COMBINE[rule] if rule else None, bool(entry.get("diagnostic", False)))


def entry_of(catalog: list[dict] | None, name: str) -> dict:
    """The entry of ``catalog`` (a module's ``CATALOG``) named ``name``."""
    for entry in catalog or ():
        if entry.get("name") == name:
            return entry
    raise ValueError(f"{name!r} has no entry in its module's {NAME}")


# reading the literals --------------------------------------------------------------------

def _source(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


class _Constants(dict):
    """The module-level constants of one source file, evaluated when first named."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.assignments: dict[str, ast.expr] = {}
        self.imports: dict[str, tuple[str, str]] = {}
        for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                self.assignments[node.targets[0].id] = node.value
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("uni."):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)

    def __missing__(self, name: str):
        if name in self.assignments:
            value = self.evaluate(self.assignments[name], name)
        elif name in self.imports:
            module, original = self.imports[name]
            value = _constants(_source(module))[original]
        else:
            raise ValueError(f"{self.path}: {name!r} is not a constant of the module")
        self[name] = value
        return value

    def evaluate(self, node: ast.expr, name: str):
        """The value of a literal expression (the module docstring's syntax), its names
        this module's constants; anything else is refused, naming the file and line."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
            return kind(self.evaluate(e, name) for e in node.elts)
        if isinstance(node, ast.Dict) and None not in node.keys:
            return {self.evaluate(k, name): self.evaluate(v, name)
                    for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            return self[node.id]
        if isinstance(node, ast.JoinedStr):
            return "".join(self.evaluate(part, name) for part in node.values)
        if isinstance(node, ast.FormattedValue) and node.conversion == -1:
            spec = "" if node.format_spec is None else self.evaluate(node.format_spec, name)
            return format(self.evaluate(node.value, name), spec)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.evaluate(node.left, name) + self.evaluate(node.right, name)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.evaluate(node.operand, name)
        raise ValueError(f"{self.path}:{node.lineno}: {name} is not a literal (uni.catalog "
                         "reads it without importing the module)")


@functools.cache
def _constants(path: Path) -> _Constants:
    return _Constants(path)


@functools.cache
def _entries(package: str) -> tuple[dict, ...]:
    """Every ``CATALOG`` entry of the modules of ``uni.<package>``."""
    entries = []
    for path in sorted((ROOT / "uni" / package).glob("*.py")):
        constants = _constants(path)
        if NAME in constants.assignments:
            entries += list(constants[NAME])
    return tuple(entries)


def _ordered(infos) -> dict:
    infos = list(infos)
    names = [info.name for info in infos]
    if len(set(names)) != len(names):
        raise ValueError(f"a name is catalogued twice: {sorted(names)}")
    return {info.name: info for info in sorted(infos, key=lambda i: (i.order, i.name))}


@functools.cache
def methods() -> dict[str, MethodInfo]:
    """Every catalogued method, in display order."""
    return _ordered(MethodInfo.from_entry(e) for e in _entries("methods"))


@functools.cache
def metrics() -> dict[str, MetricInfo]:
    """Every catalogued metric (those the runner runs, the derived ones and the
    diagnostics), in display order."""
    return _ordered(MetricInfo.from_entry(e) for e in _entries("metrics"))


def constant(module: str, name: str):
    """The literal constant ``name`` of the ``uni`` module ``module``, read without
    importing it (e.g. the named fills of ``uni.metrics.fills``)."""
    return _constants(_source(module))[name]


# methods ---------------------------------------------------------------------------------

def method_info(name: str) -> MethodInfo:
    """The method's metadata; a method the catalog does not hold is an attribution method
    displayed after the known ones."""
    return methods().get(name) or MethodInfo(name)


def ordered_names(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """``names`` (distinct) in the order of ``known``, then the others alphabetically."""
    names = list(dict.fromkeys(names))
    first = [m for m in known if m in names]
    return first + sorted(m for m in names if m not in first)


def method_order(names: Iterable[str]) -> list[str]:
    """Method entries in display order: the catalogued methods in their order, then any
    other name (a ``kind`` variant, a user's method) alphabetically."""
    return ordered_names(names, methods())


@functools.cache
def floor_methods() -> frozenset[str]:
    """The floors: maps that read nothing of the model, listed apart from the attribution
    methods in tables and claims."""
    return frozenset(n for n, info in methods().items() if info.group == "floor")


@functools.cache
def not_rivals() -> frozenset[str]:
    """Method entries that are UNI's own variants or its controls: the report's "What
    drives UNI" compares them with UNI, the Claims (UNI against its rivals) leave them out."""
    return frozenset({n for n, info in methods().items() if info.group == "control"}
                     | {e for info in methods().values() for e in info.control_entries})


# metrics ---------------------------------------------------------------------------------

def find_score(name: str, specs: Iterable, registry: str) -> tuple[int, int, object, Score]:
    """The spec among ``specs`` (in display order; each with ``scores``) covering the
    record name ``name``: its position, its score's position in it, the spec and the
    score. A name none covers is a :class:`ConfigError` naming ``registry``."""
    name, specs = str(name), list(specs)
    for qualified in (False, True):  # an exact name wins over a qualified one
        for i, spec in enumerate(specs):
            for j, score in enumerate(spec.scores):
                if score.matches(name, qualified):
                    return i, j, spec, score
    raise ConfigError(
        f"metric {name!r} is not registered in {registry} (a record's metric is a registered "
        f"name, optionally with _<suffix>, __<protocol> or [<family>]; registered: "
        f"{', '.join(s.name for s in specs)})")


def lookup(name: str) -> tuple[int, int, MetricInfo, Score]:
    """The catalogued metric covering the record name ``name`` (:func:`find_score`)."""
    return find_score(name, metrics().values(), "uni.catalog")


def metric_spec(name: str) -> MetricInfo:
    """The :class:`MetricInfo` covering the record name ``name``."""
    return lookup(name)[2]


def direction(name: str) -> str | None:
    """``higher`` or ``lower`` (which values of the record name ``name`` are better), or
    ``None`` for a side value."""
    return lookup(name)[3].direction


def lower_is_better(name: str) -> bool:
    return direction(name) == "lower"


def natural_key(text: str) -> tuple:
    """Numbers in ``text`` compared as numbers (``@2`` before ``@16``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def display_key(name: str) -> tuple:
    """Sort key of a record name: its metric's position, its score's within it, then the
    name itself (numbers numerically)."""
    i, j, _, _ = lookup(name)
    return i, j, natural_key(str(name))


def metric_order(names: Iterable[str]) -> list[str]:
    """Record names (distinct) in display order (:func:`display_key`)."""
    return sorted(dict.fromkeys(names), key=display_key)


def fills() -> tuple[str, ...]:
    """The named fills and canvases of the perturbation metrics (:mod:`uni.metrics.fills`)."""
    return tuple(constant("uni.metrics.fills", "FILLS"))

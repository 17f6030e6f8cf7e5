"""``protocol_grid``: one compact spec that expands the faithfulness metrics into one
``eval`` entry per protocol, so a run scores one set of attributions under many protocols
(``experiment=protocol_sensitivity``; the runner expands it before anything else).

    protocol_grid:
      fills: [black, grey, model_zero, blur, mean]  # MuFidelity / deletion fill, insertion canvas
      correlations: [pearson, spearman]              # MuFidelity
      steps: [10, 100]                               # deletion / insertion
      outputs: [prob, logit]                         # F_c per entry (the run's `output` else)
      masks: [bernoulli, exact]                      # MuFidelity's subsets (optional)

Every ``eval`` entry whose ``metric`` is MuFidelity, deletion or insertion is replaced by
its cells: ``<entry>__<fill>__<correlation or steps>__<output>``, e.g.
``mufidelity__black__pearson__prob`` or ``deletion__blur__10__logit`` (with ``masks``,
MuFidelity's names end in ``__<masks>``: ``mufidelity__black__pearson__prob__exact``;
without it they are as before), each with the
entry's other options (masks, subsets, ... from the protocol group) and the cell's
values. A list left out keeps the entry's own value (the run's ``output`` for outputs),
which still appears in the name. Other entries stay as they are. Names use only letters,
digits and ``_`` (a number's ``.`` becomes ``p``, ``-`` becomes ``m``), so they are valid
Hydra override keys; :func:`parse_entry_name` reads them back.
"""

from __future__ import annotations

import itertools
import re

from uni.errors import ConfigError

SPEC_KEYS = ("fills", "correlations", "steps", "outputs", "masks")
# the two options each metric varies, and the spec list each one takes its values from
AXES = {
    "mufidelity": (("fill", "fills"), ("correlation", "correlations")),
    "deletion": (("fill", "fills"), ("steps", "steps")),
    "insertion": (("canvas", "fills"), ("steps", "steps")),
}
# metrics with a ``masks`` option, varied by the spec's ``masks`` list
MASKED = ("mufidelity",)
SEPARATOR = "__"
_TOKEN = re.compile(r"^[A-Za-z0-9_]+$")


def token(value) -> str:
    """An option value as a part of an entry name."""
    text = str(value).replace(".", "p").replace("-", "m")
    if not _TOKEN.match(text) or SEPARATOR in text:
        raise ConfigError(f"protocol_grid: value {value!r} cannot be part of an eval entry name")
    return text


def entry_name(entry: str, first, second, output: str, masks: str | None = None) -> str:
    parts = [entry, first, second, output] + ([] if masks is None else [masks])
    return SEPARATOR.join([parts[0], *map(token, parts[1:])])


def parse_entry_name(name: str) -> dict | None:
    """``{"metric", "fill", "correlation_or_steps", "output"}`` of an expanded entry's
    name (the record's ``metric``), and ``"masks"`` where the name has it, or ``None``
    for any other name."""
    parts = str(name).split(SEPARATOR)
    if len(parts) not in (4, 5) or not all(parts):
        return None
    metric, fill, second, output = parts[:4]
    named = {"metric": metric, "fill": fill, "correlation_or_steps": second, "output": output}
    return {**named, "masks": parts[4]} if len(parts) == 5 else named


def _spec(grid) -> dict[str, list]:
    if not isinstance(grid, dict):
        raise ConfigError(f"protocol_grid must be a mapping with keys {list(SPEC_KEYS)}")
    unknown = sorted(set(grid) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"protocol_grid: unknown key(s) {unknown}; allowed: {list(SPEC_KEYS)}")
    spec = {}
    for key, values in grid.items():
        if values is None:
            continue
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"protocol_grid.{key}={values!r} must be a non-empty list")
        if len(set(map(str, values))) != len(values):
            raise ConfigError(f"protocol_grid.{key}={values!r} lists a value twice")
        spec[key] = list(values)
    return spec


def expand_protocol_grid(cfg: dict) -> dict:
    """``cfg`` (a plain dict) with its faithfulness ``eval`` entries replaced by one entry
    per cell of ``cfg["protocol_grid"]``; ``cfg`` itself when there is no grid."""
    grid = cfg.get("protocol_grid")
    if not grid:
        return cfg
    spec = _spec(grid)
    expanded: dict = {}
    for entry, options in cfg["eval"].items():
        metric = options.get("metric") if isinstance(options, dict) else None
        if metric not in AXES:
            expanded[entry] = options
            continue
        (first, first_key), (second, second_key) = AXES[metric]
        varied_masks = "masks" in spec and metric in MASKED
        cells = itertools.product(
            spec.get(first_key, [options.get(first)]),
            spec.get(second_key, [options.get(second)]),
            spec.get("outputs", [options.get("output", cfg["output"])]),
            spec["masks"] if varied_masks else [None],
        )
        for a, b, output, masks in cells:
            name = entry_name(entry, a, b, output, masks)
            if name in expanded or name in cfg["eval"]:
                raise ConfigError(f"protocol_grid: eval entry {name!r} would be made twice")
            expanded[name] = {**options, first: a, second: b, "output": output,
                              **({"masks": masks} if varied_masks else {})}
    return {**cfg, "eval": expanded}

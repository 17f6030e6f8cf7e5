"""A run's config checked before any work: names and values that cannot work are one line
naming the setting and what it may hold (types included: ``data.limit=abc`` is not a
traceback after the model has loaded)."""

from __future__ import annotations

import torch

from uni.contract import (
    Setting,
    check_names,
    check_settings,
    from_annotation,
    keyword_parameters,
    merge,
)
from uni.data import check_data_options
from uni.data.selection import check_tuning_subset
from uni.errors import ConfigError
from uni.methods import METHODS, OPTION_LIMITS, check_method_options
from uni.metrics import REGISTRY, check_entry_name, check_options
from uni.models import OUTPUTS, check_runtime, set_runtime

TARGETS = ("prediction", "label")
# ``attribution.*``: defaults of every path method's options
ATTRIBUTION = {
    "steps": merge(Setting(int), OPTION_LIMITS["steps"]),
    "rule": merge(Setting(str), OPTION_LIMITS["rule"]),
    "internal_batch_size": merge(Setting(int), OPTION_LIMITS["internal_batch_size"]),
}
# the run's own numeric settings, by section ("": top level)
SETTINGS: dict[str, dict[str, Setting]] = {
    # a seed is stored as a 64-bit integer
    "": {"seed": Setting(int, low=-2**63, high=2**63 - 1), "attribution_store": Setting(str)},
    "data": {"batch_size": Setting(int, low=1), "num_workers": Setting(int, low=0),
             "split_label": Setting(str, nullable=True)},
    "eval": {"batch_size": Setting(int, low=1)},
    "figures": {"images": Setting(int, low=0)},
    "runtime": {k: from_annotation(p.annotation)
                for k, p in keyword_parameters(set_runtime).items() if k != "model"},
}
# the sections of a run's config (conf/config.yaml and its groups)
SECTIONS = frozenset({
    *SETTINGS[""], "device", "output", "target", "attribution", "runtime", "eval",
    "protocol_grid", "figures", "model", "data", "method", "logger", "protocol", "profile",
    "paths",  # this machine's paths, which the configs refer to (conf/paths/default.yaml)
    "imports",  # a user's modules, imported by uni.run before the run (uni.run.import_modules)
    "batch_sizes",  # per-device batch sizes the settings above pick (uni/device_defaults.py)
    "experiment",  # the experiment config's name (uni.run adds it; the logger's job_type)
})


def split_eval(eval_cfg: dict) -> tuple[dict[str, dict], dict]:
    """``eval`` holds one mapping per selected metric (with a ``metric`` key naming its
    function) plus shared settings (e.g. ``batch_size``). Mappings without ``metric`` are
    option overrides (from a profile) for metrics this run did not select."""
    metrics = {k: dict(v) for k, v in eval_cfg.items() if isinstance(v, dict) and "metric" in v}
    shared = {k: v for k, v in eval_cfg.items() if not isinstance(v, dict)}
    return metrics, shared


def method_kind(name: str, options: dict) -> str:
    """The registered method a ``method.<name>`` entry runs: its ``kind`` option, else
    its name (``kind`` lets one run compare variants of one method, e.g. UNI's ablation:
    ``method.uni_eps8: {kind: uni, eps: ...}``; records carry the entry's name)."""
    return options.get("kind", name)


def compile_conflicts(methods: dict[str, dict], metrics: dict[str, dict]) -> list[str]:
    """The method and ``eval`` entries that cannot run on a compiled model
    (:attr:`MethodSpec.compiles <uni.methods.MethodSpec>`,
    :attr:`MetricSpec.compile_conflict <uni.metrics.MetricSpec>`)."""
    found = [f"method {name}" for name, options in methods.items()
             if not METHODS[method_kind(name, options)].compiles]
    for entry, options in metrics.items():
        conflict = REGISTRY[options["metric"]].compile_conflict
        reason = conflict(**options) if conflict else None
        if reason:
            found.append(f"eval entry {entry} ({reason})")
    return found


def check_config(cfg: dict) -> None:
    """Fail before any work on names and values that cannot work: one line naming the
    setting and what it may hold."""
    check_names("", cfg, SECTIONS)
    check_names("attribution", cfg.get("attribution") or {}, ATTRIBUTION)
    check_names("figures", cfg.get("figures") or {}, SETTINGS["figures"])
    check_names("eval", split_eval(cfg["eval"])[1], SETTINGS["eval"])
    for section, settings in SETTINGS.items():
        check_settings(section, cfg if not section else cfg.get(section) or {}, settings)
    check_data_options(cfg["data"], runner_options=SETTINGS["data"])
    check_tuning_subset(cfg.get("experiment"), cfg["data"])
    if cfg["output"] not in OUTPUTS:
        raise ConfigError(f"output={cfg['output']!r} is not one of {list(OUTPUTS)}")
    if cfg["target"] not in TARGETS:
        raise ConfigError(f"target={cfg['target']!r} is not one of {list(TARGETS)}")
    if not cfg.get("method"):
        raise ConfigError("method: no attribution method selected (e.g. method=[ig_black,uni])")
    if not str(cfg.get("attribution_store", "run")).strip():
        raise ConfigError("attribution_store is empty: run (<run dir>/attributions), off or "
                          "a directory")
    # the shared path options first: a bad one is named as the user set it
    check_settings("attribution", cfg.get("attribution") or {}, ATTRIBUTION)
    for name, options in cfg["method"].items():
        check_method_options(name, options)
    metrics, _ = split_eval(cfg["eval"])
    if not metrics:
        raise ConfigError("eval: no metric selected (e.g. eval=[mufidelity])")
    for entry, options in metrics.items():
        try:
            check_options(options["metric"], options)
            check_entry_name(entry, options)
        except ConfigError as err:
            if entry == options["metric"]:
                raise
            raise ConfigError(f"{err} (in eval entry {entry!r})") from None
    runtime = cfg.get("runtime") or {}
    check_runtime(runtime)
    conflicts = compile_conflicts(cfg["method"], metrics) if runtime.get("compile") else []
    if conflicts:  # compiled modules ignore hooks added later and double backward
        raise ConfigError(f"runtime.compile=true does not work with {' or '.join(conflicts)}; "
                          "drop one of them")


def resolve_device(name: str) -> torch.device:
    """The device ``device=<name>`` names (``auto``: CUDA where there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device={name!r} is not one of ['auto', 'cpu', 'cuda']")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA device is available")
    return torch.device(name)

"""The public metric functions (``uni.metrics.<name>``): the registered metrics as the
runner calls them, their inputs checked (:mod:`uni.inputs`; the modules' own functions,
which call each other on tensors already checked, do not), and the curves and the attack
behind deletion, insertion and robustness."""

from __future__ import annotations

from uni.inputs import checked_metric
from uni.metrics import deletion_insertion as _deletion_insertion
from uni.metrics import robustness as _robustness
from uni.metrics._registry import METRICS

completeness = METRICS["completeness"]
deletion = METRICS["deletion"]
insertion = METRICS["insertion"]
mufidelity = METRICS["mufidelity"]
noise_floor = METRICS["noise_floor"]
road = METRICS["road"]
robustness = METRICS["robustness"]
sanity = METRICS["sanity"]
stability = METRICS["stability"]
deletion_curve = checked_metric(_deletion_insertion.deletion_curve)
insertion_curve = checked_metric(_deletion_insertion.insertion_curve)
robustness_attack = checked_metric(_robustness.robustness_attack)


def protocol(name: str = "paper") -> dict[str, dict]:
    """The options a metric protocol of ``conf/protocol/`` gives each metric, for the
    Python calls: ``uni.metrics.mufidelity(model, x, a, target, **protocol()["mufidelity"])``
    scores as the command line does by default (the functions' own defaults are
    ``protocol("rise")``'s, ``conf/eval/``)."""
    import yaml

    from uni.config_dir import CONF_DIR
    from uni.errors import ConfigError

    names = sorted(p.stem for p in (CONF_DIR / "protocol").glob("*.yaml"))
    if name not in names:
        raise ConfigError(f"protocol={name!r} is not one of {names}")
    config = yaml.safe_load((CONF_DIR / "protocol" / f"{name}.yaml").read_text()) or {}
    return {metric: dict(options) for metric, options in (config.get("eval") or {}).items()}

"""One place for each default, and no machine path in a shipped config (issue 29).

The configs are the defaults: a method's or metric's Python signature may default an option
its YAML sets only to the same value, so that ``uni.attribute(...)`` and a run agree. Machine
paths live in the ``paths`` group (``conf/paths/default.yaml``), read from the environment."""

import functools
import inspect
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.data import build_dataset
from uni.data.selection import resolve_sample, resolve_subset
from uni.errors import ConfigError
from uni.methods import METHODS
from uni.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DEV_DATA = "../shared/data/imagenet-sample-dev"  # what results/dev's records were keyed on
DEV_EXPERIMENTS = {"baseline_ablation", "calibration", "protocol_sensitivity",
                   "topk_calibration", "uni_ablation"}
# a YAML value a library call cannot take: (option file, option) -> why
RUN_ONLY = {("method/expected_gradients", "reference"):
            "split is the run's data split; a library call has none (its default: batch)"}


def _composed(*overrides: str) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


@functools.cache
def _default_config():
    """The default config. A library call has no run device: the CPU's batch sizes."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        root = compose("config", overrides=["device=cpu"])
    OmegaConf.set_struct(root, False)
    return root


def _option_file(group: str, name: str) -> dict:
    """``conf/<group>/<name>.yaml`` with its interpolations (``${attribution.steps}``)
    resolved against the default config."""
    root = _default_config()
    OmegaConf.update(root, f"{group}.{name}", OmegaConf.load(CONF / group / f"{name}.yaml"),
                     merge=False)
    return OmegaConf.to_container(root[group][name], resolve=True)


def _defaults(fn) -> tuple[dict, dict]:
    """``fn``'s keyword defaults and the keywords a :func:`functools.partial` binds."""
    bound = {}
    while isinstance(fn, functools.partial):
        bound = {**fn.keywords, **bound}
        fn = fn.func
    parameters = inspect.signature(fn).parameters
    return {k: p.default for k, p in parameters.items() if p.default is not p.empty}, bound


def _same(config_value, default) -> bool:
    if isinstance(default, tuple):
        default = list(default)
    if all(isinstance(v, int | float) and not isinstance(v, bool)
           for v in (config_value, default)):
        return math.isclose(config_value, default)
    return type(config_value) is type(default) and config_value == default


def _method_differences(name: str, options: dict) -> tuple[list[str], int]:
    spec = METHODS[name]
    defaults, bound = _defaults(spec.fn)
    others = [_defaults(fn)[0] for fn in spec.option_functions]
    differences, compared = [], 0
    for option, value in options.items():
        if (f"method/{name}", option) in RUN_ONLY:
            continue
        # a partial's bound value is the default (uni_paper: Algorithm 1's settings);
        # otherwise every function that takes the option must default it alike
        candidates = [bound[option]] if option in bound else [
            d[option] for d in (defaults, *others) if option in d]
        compared += bool(candidates)
        differences += [f"method/{name}.yaml {option}: {value!r}, Python {default!r}"
                        for default in candidates if not _same(value, default)]
    return differences, compared


def test_signature_defaults_agree_with_the_configs():
    differences, compared = [], 0
    for path in sorted((CONF / "method").glob("*.yaml")):
        options = _option_file("method", path.stem)
        if "kind" in options:  # a variant of a registered method: its own settings
            continue
        found, count = _method_differences(path.stem, options)
        differences += found
        compared += count
    for path in sorted((CONF / "eval").glob("*.yaml")):
        options = _option_file("eval", path.stem)
        defaults = REGISTRY[options.pop("metric")].defaults()
        for option, value in options.items():
            if option in defaults:
                compared += 1
                if not _same(value, defaults[option]):
                    differences.append(f"eval/{path.stem}.yaml {option}: {value!r}, "
                                       f"Python {defaults[option]!r}")
    # the run-wide settings the runner passes to every method and metric that takes them
    run = _default_config()
    shared = {"seed": run.seed, "output": run.output, "batch_size": run.eval.batch_size}
    registered = [*((f"method {n}", s.fn) for n, s in METHODS.items()),
                  *((f"metric {n}", s.fn) for n, s in REGISTRY.items() if s.fn is not None)]
    for label, fn in registered:
        defaults = _defaults(fn)[0]
        for option in shared.keys() & defaults.keys():
            compared += 1
            if not _same(shared[option], defaults[option]):
                differences.append(f"{label} {option}: config {shared[option]!r}, "
                                   f"Python {defaults[option]!r}")
    assert not differences, "\n".join(differences)
    assert compared > 150  # every method's steps, rule, internal_batch_size, ...


def test_the_check_finds_a_differing_default():
    options = _option_file("method", "uni")
    assert _method_differences("uni", options)[0] == []
    options["internal_batch_size"] = 16
    options["eps"] = 2.0
    assert _method_differences("uni", options)[0] == [
        "method/uni.yaml internal_batch_size: 16, Python 4",
        "method/uni.yaml eps: 2.0, Python 0.76078"]
    paper = _option_file("method", "uni_paper")
    assert _method_differences("uni_paper", paper)[0] == []  # Algorithm 1's bound values
    assert _method_differences("uni_paper", {**paper, "eta": 0.1})[0] == [
        "method/uni_paper.yaml eta: 0.1, Python 0.01"]
    assert not _same(True, 1) and not _same("4", 4) and _same(0.1, 0.1 + 1e-12)


def test_no_shipped_config_or_module_holds_a_development_path():
    found = [f"{p.relative_to(ROOT)}:{i}" for folder in (CONF, ROOT / "uni")
             for p in folder.rglob("*") if p.suffix in (".yaml", ".py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if "shared/data" in line]
    assert not found, found


def test_dev_experiments_read_the_split_from_the_paths_group_with_the_same_keys(monkeypatch):
    """``UNI_DEV_DATA`` (or ``data.root=``, as the Makefile passes it) gives the very
    ``data.root`` string results/dev's records were keyed on."""
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    monkeypatch.setenv("UNI_DEV_DATA", DEV_DATA)
    from_environment = {e: _composed(f"experiment={e}") for e in experiments}
    assert {e for e, c in from_environment.items()
            if c["data"].get("root") == DEV_DATA} == DEV_EXPERIMENTS
    assert all(c["paths"] == {"dev_data": DEV_DATA} for c in from_environment.values())
    monkeypatch.delenv("UNI_DEV_DATA")
    unset = _composed("experiment=uni_ablation")
    assert unset["data"]["root"] is None and unset["paths"] == {"dev_data": None}
    for experiment in sorted(DEV_EXPERIMENTS):
        given = _composed(f"experiment={experiment}", f"data.root={DEV_DATA}")
        assert ({**given, "paths": None} == {**from_environment[experiment], "paths": None})


def test_the_python_data_defaults_are_the_configs():
    """``build_dataset`` with no selection options takes the images a run of the same
    ``data=`` takes: subset, order, key and tuning size as ``conf/data/<name>.yaml``."""
    compared = 0
    for path in sorted((CONF / "data").glob("*.yaml")):
        data = _composed(f"data={path.stem}")["data"]
        defaults = _defaults(build_dataset)[0]
        name = data["name"] if data["name"] != "imagenet_c_synthetic" else data["base"]
        resolved = {**defaults, "subset": resolve_subset(name, defaults["subset"]),
                    "sample": resolve_sample(name, defaults["sample"])}
        for option in ("subset", "sample", "sample_seed", "tune_size"):
            compared += 1
            configured = data[option]
            if option == "subset":
                configured = resolve_subset(name, configured)
            assert _same(configured, resolved[option]), (path.name, option)
    assert compared >= 16


def test_a_dev_experiment_without_its_folder_fails_in_one_line(monkeypatch):
    monkeypatch.delenv("UNI_DEV_DATA", raising=False)
    data = _composed("experiment=uni_ablation")["data"]
    with pytest.raises(ConfigError) as err:
        build_dataset(data["name"], {"input_size": (3, 32, 32)}, root=data["root"])
    assert "data.root=PATH" in str(err.value) and "UNI_DEV_DATA=PATH" in str(err.value)
    assert "\n" not in str(err.value)


def test_sweep_folders_named_by_overrides_leave_the_data_path_out():
    """A sweep whose job folders are named by ``override_dirname`` must leave ``data.root``
    out of the name: a path in it nests the folder (``data.root=../shared/...``), and the
    selection (``uni.analysis.ablation``) reads one level of job folders only."""
    named = []
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        hydra_cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False).get("hydra", {})
        if "override_dirname" not in str(hydra_cfg.get("sweep", {}).get("subdir")):
            continue
        named.append(path.stem)
        job = hydra_cfg.get("job", {}).get("config", {}).get("override_dirname", {})
        excluded = job.get("exclude_keys", [])
        assert "data.root" in excluded, f"{path.name}: data.root not in exclude_keys"
    assert {"uni_ablation", "baseline_ablation"} <= set(named)


@pytest.mark.parametrize("profile", sorted(p.stem for p in (CONF / "profile").glob("*.yaml")))
def test_every_setting_of_a_profile_takes_effect(profile):
    """A profile composes before config.yaml's own values (``_self_``): a key both set
    would silently keep config.yaml's. Every leaf a profile states is what composes."""
    stated = OmegaConf.to_container(OmegaConf.load(CONF / "profile" / f"{profile}.yaml"))
    stated.pop("defaults", None)

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    cfg = OmegaConf.create(_composed(f"profile={profile}"))
    for key, value in leaves(stated):
        assert OmegaConf.select(cfg, key) == value, f"profile={profile}: {key}"

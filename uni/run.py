"""The command line: ``python -m uni.run`` / ``uni`` (Hydra).

    uni model=efficientnet_lite0 data=embedded method=[ig_black,uni] eval=[mufidelity]
    uni tables RUN_DIR... [--out DIR] [--format md|csv|latex] [--by-run]  (printed;
        written only with --out)
    uni report RESULTS_DIR [--wandb]  (tables, figures and REPORT.md of a run, a sweep or
        the results of `make reproduce`)
    uni --plan experiment=faithfulness data.limit=50000  (the cost, from one calibration
        image, without running or writing anything; per job of a --multirun)

Config groups live in ``conf/`` (model, data, method, eval, logger, paths, protocol, profile,
experiment). A setting
that cannot work fails before any work, in one line naming it and what is allowed.
"""

from __future__ import annotations

import importlib
import logging
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from uni.config_dir import CONF_DIR
from uni.errors import ConfigError, RunError, os_error_line

GROUPS = ("model", "data", "method", "eval", "logger", "paths", "protocol", "profile",
          "experiment")
PLAN = "--plan"  # print the run's cost plan (uni.engine.plan.plan) instead of running it
# with --plan: the images to plan for (default: the selection's) and the wall hours a
# shard must fit (uni/scale.py's shard table)
PLAN_OPTIONS = {"--plan-images": int, "--plan-hours": float}
_planning = False
_plan_options: dict = {}
_failed_jobs: list[str] = []  # a multirun's jobs that failed: "<job dir>: <error line>"
log = logging.getLogger("uni.run")


def group_options(group: str, search_path: list[Path] = ()) -> list[str]:
    """The options of a config group: the package's and those of the directories on
    Hydra's search path (``hydra.searchpath=[file://DIR]``: a user's own configs)."""
    return sorted({p.stem for root in (CONF_DIR, *search_path)
                   for p in (Path(root) / group).glob("*.yaml")})


def search_path(argv: list[str]) -> list[Path]:
    """The ``file://`` directories a ``hydra.searchpath=[...]`` override adds."""
    dirs = []
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == "hydra.searchpath":
            dirs += [Path(item.strip().strip("'\"").removeprefix("file://"))
                     for item in value.strip("[]").split(",")
                     if item.strip().strip("'\"").startswith("file://")]
    return dirs


def import_modules(names) -> None:
    """Import the modules of the config's ``imports`` (a user's methods and metrics, which
    register themselves), as MMEngine's ``custom_imports``; one that cannot be imported is
    a one-line :class:`ConfigError`."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names or []):
        raise ConfigError(f"imports={names!r} must be a list of module names")
    for name in names or []:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err}); is its directory on "
                              "PYTHONPATH or the working directory?") from None


def check_override_syntax(argv: list[str]) -> None:
    """Parse the ``key=value`` overrides as Hydra will, so that one it cannot parse (an
    unquoted non-ASCII character) is the project's one line, not Hydra's lexer block."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            raise ConfigError(f"override {arg!r} is not valid override syntax (quote a value "
                              "with spaces or non-ASCII characters: key='value')") from None


def check_group_overrides(argv: list[str]) -> None:
    """Catch a misspelt ``group=option`` before Hydra does, with a one-line message."""
    extra = search_path(argv)
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or value in ("", "null"):
            continue
        for option in value.strip("[]").split(","):
            option = option.strip()
            if option and option not in group_options(key, extra):
                hint = " (any timm model: model=timm model.name=NAME)" if key == "model" else ""
                raise ConfigError(
                    f"{key}={option!r} is not one of {group_options(key, extra)}{hint}")


def check_override_keys(argv: list[str]) -> None:
    """A key no composed config has (``data.limt=3``, ``method.uni.epz=3``) in one line
    naming it, before Hydra's block: the overrides composed once, a sweep at its first
    value. Anything else that fails to compose is left to Hydra's own report."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException

    parser = OverridesParser.create()
    overrides = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg or arg.lstrip("+~").startswith("hydra"):
            continue
        (override,) = parser.parse_overrides([arg])
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()), None)
            if first is None:
                continue
            arg = f"{arg.partition('=')[0]}={first}"
        overrides.append(arg)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            compose("config", overrides=overrides)
    except ConfigCompositionException as err:
        key = getattr(err.__cause__, "full_key", None)
        if key and "not in struct" in str(err.__cause__):
            raise ConfigError(f"{key} is not a setting of the composed config (misspelt? "
                              f"`uni --help` lists the groups; a new key takes +{key}=VALUE)"
                              ) from None


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    failure = _run_job(cfg, run_dir)
    if failure is None:
        return
    message, code = failure
    print(f"error: {message}", file=sys.stderr)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # one bad job does not stop the sweep: the others run, the failures are listed
        _failed_jobs.append(f"{run_dir}: {message}")
        return
    sys.exit(code)


def _run_job(cfg: DictConfig, run_dir: Path) -> tuple[str, int] | None:
    """Run (or plan) one job; ``None``, or its one-line error and exit status."""
    from hydra.core.hydra_config import HydraConfig

    from uni.analysis.tables import summary_table
    from uni.console import capture_warnings
    from uni.engine.plan import plan
    from uni.scale import WALL_HOURS, shard_lines

    capture_warnings()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # which experiment config composed the run (for the logger's job_type; no value changes)
    resolved["experiment"] = HydraConfig.get().runtime.choices.get("experiment")
    try:
        import_modules(resolved.get("imports"))
        if _planning:
            estimate = plan(resolved, run_dir,
                            announce=lambda text: print(text, file=sys.stderr, flush=True))
            print("\n".join(estimate.lines() + shard_lines(
                estimate.seconds_per_image, estimate.setup_seconds, estimate.device,
                _plan_options.get("--plan-images", estimate.all_images), estimate.experiment,
                resolved["model"]["name"], _plan_options.get("--plan-hours", WALL_HOURS))))
            return None
        summary = run_config(resolved, run_dir)
    except ConfigError as err:
        return str(err), 2
    except RunError as err:
        return str(err), 1
    except OSError as err:  # a full disk, a read-only directory: finished batches are kept
        return (f"{os_error_line(err)}; finished batches are in {run_dir}; rerun the same "
                "command once this is fixed"), 1
    except KeyboardInterrupt:  # stops a sweep too
        print(f"interrupted: finished batches are in {run_dir}; rerun the same command to "
              "resume", file=sys.stderr)
        sys.exit(130)
    table = summary_table(summary.records)
    log.info("%s\n%s", summary.line(), table)
    print(summary.line())
    print(f"{run_dir.name}: mean [95% bootstrap interval] (n images) per method x metric")
    print(table)
    return None


def run_config(cfg: dict, run_dir: str | Path):
    """Run a composed, resolved config into ``run_dir`` as the command line does: checked,
    prepared, run and logged (:func:`run_and_log`); its
    :class:`~uni.engine.loop.RunSummary`."""
    from uni.engine.job import prepare

    run_dir = Path(run_dir)
    return run_and_log(prepare(cfg, run_dir), run_dir)


def run_and_log(ready, run_dir: Path):
    """Run a prepared job (:func:`uni.engine.loop.execute`), its progress to the config's
    logger, started once the config has passed its checks; after the run, finished or
    not, the logger gets the records, summary, tables and figures
    (:func:`uni.analysis.dashboard.log_run`)."""
    from uni.analysis.dashboard import log_run
    from uni.engine.loop import execute
    from uni.loggers import make_logger
    from uni.records import RecordStore

    logger = make_logger(ready.cfg.get("logger") or {}, ready.cfg, run_dir)
    try:
        return execute(ready, run_dir, logger)
    finally:  # also on Ctrl-C and on a run whose methods gave nothing usable
        if logger.enabled:
            log_run(logger, run_dir, RecordStore(run_dir).load())
        logger.finish()


RUN_DIRS = ("hydra.run.dir", "hydra.sweep.dir")  # where Hydra writes a run


def check_output_dirs(argv: list[str]) -> None:
    """Create the run directory a command names (``hydra.run.dir`` / ``hydra.sweep.dir``)
    before Hydra does, so that one that cannot be created is one line, not Hydra's
    traceback; directories with interpolations are left to Hydra."""
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in RUN_DIRS and "${" not in value:
            Path(value).mkdir(parents=True, exist_ok=True)


def plan_options(argv: list[str]) -> list[str]:
    """Take ``--plan-images=N`` and ``--plan-hours=H`` out of ``argv`` (into
    ``_plan_options``)."""
    rest = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if name not in PLAN_OPTIONS:
            rest.append(arg)
            continue
        try:
            number = PLAN_OPTIONS[name](value)
        except ValueError:
            number = 0
        if number <= 0:
            raise ConfigError(f"{name}={value!r} must be a positive number")
        _plan_options[name] = number
    return rest


def sweep_subdir_overrides(argv: list[str]) -> list[str]:
    """For a ``--multirun`` whose job directories neither the command line nor the
    experiment config names: the overrides that name each by the settings that vary
    between the jobs (``method.uni.eps=0.01``), the fixed ones left out. A command line
    Hydra cannot parse is left to Hydra's own error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not {"-m", "--multirun"} & set(argv):
        return []
    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in argv if not a.startswith("-")])
    except Exception:
        return []
    if any(o.key_or_group == "hydra.sweep.subdir" for o in overrides):
        return []
    for o in overrides:
        if o.key_or_group == "experiment":
            names = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            for name in names:
                path = CONF_DIR / "experiment" / f"{name}.yaml"
                named = path.exists() and OmegaConf.select(OmegaConf.load(path), "hydra.sweep")
                if named and "subdir" in named:  # not resolved: it names Hydra's job keys
                    return []
    own = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    if not any(o.is_sweep_override() for o in own):
        return []
    fixed = sorted({o.key_or_group for o in own if not o.is_sweep_override()})
    return ["hydra.sweep.subdir=${hydra.job.override_dirname}",
            "hydra.job.config.override_dirname.exclude_keys=["
            + ",".join(f"'{key}'" for key in fixed) + "]"]


def main() -> None:
    global _planning
    _failed_jobs.clear()
    _planning = PLAN in sys.argv[1:]
    if _planning:
        sys.argv = [a for a in sys.argv if a != PLAN]
        try:
            sys.argv = plan_options(sys.argv)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
    if sys.argv[1:2] in (["tables"], ["report"]):  # subcommands on stored records
        from uni.analysis.commands import report_main, tables_main

        command = tables_main if sys.argv[1] == "tables" else report_main
        return command(sys.argv[2:])
    try:
        check_override_syntax(sys.argv[1:])
        check_group_overrides(sys.argv[1:])
        check_override_keys(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv += sweep_subdir_overrides(sys.argv[1:])
    if _planning:  # a plan stores nothing: Hydra's run directory is a scratch one
        with tempfile.TemporaryDirectory(prefix="uni-plan-") as scratch:
            sys.argv = [a for a in sys.argv if a.lstrip("+").partition("=")[0] not in RUN_DIRS]
            sys.argv += [f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}"]
            return _hydra_main()
    try:
        check_output_dirs(sys.argv[1:])
    except OSError as err:
        print(f"error: cannot create the run directory: {os_error_line(err)}", file=sys.stderr)
        sys.exit(1)
    _hydra_main()
    if _failed_jobs:
        print(f"error: {len(_failed_jobs)} job(s) of the multirun failed (the others ran):",
              file=sys.stderr)
        print("\n".join(f"  {line}" for line in _failed_jobs), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The command line: ``python -m uni.run`` / ``uni`` (Hydra).

    uni model=efficientnet_lite0 data=embedded method=[ig_black,uni] eval=[mufidelity]
    uni tables RUN_DIR... [--out DIR] [--format md|csv|latex] [--by-run]
    uni report RESULTS_DIR [--wandb]  (tables, figures and REPORT.md of `make reproduce`)
    uni --plan experiment=faithfulness data.limit=50000  (the cost, from one calibration
        image, without running; per job of a --multirun, e.g. per shard)

Config groups live in ``uni/conf/`` (model, data, method, eval, logger, experiment). A setting
that cannot work fails before any work, in one line naming it and what is allowed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from uni.errors import ConfigError, RunError, os_error_line

CONF_DIR = Path(__file__).resolve().parent / "conf"  # package data: installs with uni
GROUPS = ("model", "data", "method", "eval", "logger", "protocol", "profile", "experiment")
PLAN = "--plan"  # print the run's cost plan (uni.runner.plan) instead of running it
_planning = False
_failed_jobs: list[str] = []  # a multirun's jobs that failed: "<job dir>: <error line>"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


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
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or value in ("", "null"):
            continue
        for option in value.strip("[]").split(","):
            option = option.strip()
            if option and option not in group_options(key):
                hint = " (any timm model: model=timm model.name=NAME)" if key == "model" else ""
                raise ConfigError(f"{key}={option!r} is not one of {group_options(key)}{hint}")


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

    from uni.runner import plan, run

    resolved = OmegaConf.to_container(cfg, resolve=True)
    # which experiment config composed the run (for the logger's job_type; no value changes)
    resolved["experiment"] = HydraConfig.get().runtime.choices.get("experiment")
    try:
        if _planning:
            print("\n".join(plan(resolved, run_dir).lines()))
            return None
        summary = run(resolved, run_dir)
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
    print(summary.line())
    return None


def check_output_dirs(argv: list[str]) -> None:
    """Create the run directory a command names (``hydra.run.dir`` / ``hydra.sweep.dir``)
    before Hydra does, so that one that cannot be created is one line, not Hydra's
    traceback; directories with interpolations are left to Hydra."""
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir") and "${" not in value:
            Path(value).mkdir(parents=True, exist_ok=True)


def main() -> None:
    global _planning
    _failed_jobs.clear()
    _planning = PLAN in sys.argv[1:]
    if _planning:
        sys.argv = [a for a in sys.argv if a != PLAN]
    if sys.argv[1:2] in (["tables"], ["report"]):  # subcommands on stored records
        from uni.commands import report_main, tables_main

        command = tables_main if sys.argv[1] == "tables" else report_main
        return command(sys.argv[2:])
    try:
        check_override_syntax(sys.argv[1:])
        check_group_overrides(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        check_output_dirs(sys.argv[1:])
    except OSError as err:
        print(f"error: cannot create the run directory: {os_error_line(err)}", file=sys.stderr)
        sys.exit(1)
    if _planning:  # the plan writes no config (an existing run's .hydra stays its own)
        sys.argv.append("hydra.output_subdir=null")
    _hydra_main()
    if _failed_jobs:
        print(f"error: {len(_failed_jobs)} job(s) of the multirun failed (the others ran):",
              file=sys.stderr)
        print("\n".join(f"  {line}" for line in _failed_jobs), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

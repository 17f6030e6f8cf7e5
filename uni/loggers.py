"""Experiment loggers: ``logger=none`` (default) or ``logger=wandb``.

wandb gets the resolved config, progress and, at the end of a run, what
:func:`uni.analysis.dashboard.log_run` sends: the per-method summary, the tables and the figures.
Runs of one experiment or sweep share a wandb ``group`` (the directory that holds the run
directories) and have the experiment as their ``job_type``. Without an API key (or with
``logger.mode=offline``) wandb runs offline into ``<run>/wandb/``; ``wandb sync
<run>/wandb/offline-run-*`` uploads later. An offline run's summary is also written to its
``files/wandb-summary.json`` (as wandb does online), to read without syncing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from uni.errors import ConfigError
from uni.records import write_text

LOGGERS = ("none", "wandb")
SUMMARY_FILE = "wandb-summary.json"  # wandb's name for it, in the run's files/
WANDB_CLOUD = "https://api.wandb.ai"
CONNECT_SECONDS = 3.0  # how long an online run waits for the server before going offline


class NoLogger:
    enabled = False  # whether anything is recorded (worth drawing figures for)

    def log(self, values: dict, step: int | None = None) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def log_html(self, name: str, html: str) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger(NoLogger):
    enabled = True

    def __init__(self, config: dict, run_dir: Path, project: str, mode: str | None, name=None,
                 group: str | None = None, job_type: str | None = None):
        import wandb

        if mode is None and "WANDB_MODE" not in os.environ:  # wandb reads WANDB_MODE itself
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        if (mode or os.environ.get("WANDB_MODE", "online")) == "online":
            unreachable = server_unreachable()
            if unreachable:  # wandb would retry for minutes, then raise a traceback
                print(f"wandb: {unreachable}; logging offline into {Path(run_dir) / 'wandb'} "
                      "(`wandb sync` later)", file=sys.stderr)
                mode = "offline"
        self.wandb = wandb
        self.run = wandb.init(
            project=project, name=name or Path(run_dir).name, config=config, mode=mode,
            dir=str(run_dir), group=group, job_type=job_type, reinit="finish_previous",
        )

    def log(self, values: dict, step: int | None = None) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict) -> None:
        self.run.summary.update(values)

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        self.run.log({name: self.wandb.Table(dataframe=frame.reset_index(drop=False))})

    def log_image(self, name: str, path: Path) -> None:
        self.run.log({name: self.wandb.Image(str(path))})

    def log_html(self, name: str, html: str) -> None:
        self.run.log({name: self.wandb.Html(html, inject=False)})

    def finish(self) -> None:
        if self.run.offline:  # wandb writes its summary file only online (wandb/wandb#9646)
            summary = {key: self.run.summary[key] for key in self.run.summary.keys()}
            write_text(Path(self.run.dir) / SUMMARY_FILE, json.dumps(summary, default=dict))
        self.run.finish()


def server_unreachable(timeout: float = CONNECT_SECONDS) -> str | None:
    """Why the wandb server (``WANDB_BASE_URL``, else wandb's cloud) cannot be reached
    within ``timeout`` seconds, or ``None`` when it can."""
    url = urlsplit(os.environ.get("WANDB_BASE_URL") or WANDB_CLOUD)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port} unreachable ({err.strerror or type(err).__name__})"
    return None


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when under it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def make_logger(logger_cfg: dict, config: dict, run_dir: Path) -> NoLogger:
    name = logger_cfg.get("name", "none")
    if name not in LOGGERS:
        raise ConfigError(f"logger={name!r} is not one of {list(LOGGERS)}")
    if name == "none":
        return NoLogger()
    return WandbLogger(config, run_dir, logger_cfg.get("project", "uni-bench"),
                       logger_cfg.get("mode"), logger_cfg.get("run_name"),
                       # runs of one experiment or sweep: the directory that holds their directories
                       logger_cfg.get("group") or shown_path(Path(run_dir).resolve().parent),
                       logger_cfg.get("job_type") or config.get("experiment"))

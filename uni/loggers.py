"""Experiment loggers: ``logger=none`` (default) or ``logger=wandb``.

wandb gets the resolved config, progress, the records as a ``wandb.Table``, the tables and
the figures. Without an API key (or ``logger.mode=offline``) it runs offline into
``<run>/wandb/``; ``wandb sync <run>/wandb/offline-run-*`` uploads later.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from uni.errors import ConfigError

LOGGERS = ("none", "wandb")


class NoLogger:
    def log(self, values: dict, step: int | None = None) -> None:
        pass

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger(NoLogger):
    def __init__(self, config: dict, run_dir: Path, project: str, mode: str | None, name=None):
        import wandb

        if mode is None:
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        self.wandb = wandb
        self.run = wandb.init(
            project=project, name=name or Path(run_dir).name, config=config, mode=mode,
            dir=str(run_dir), reinit="finish_previous",
        )

    def log(self, values: dict, step: int | None = None) -> None:
        self.run.log(values, step=step)

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        self.run.log({name: self.wandb.Table(dataframe=frame.reset_index(drop=False))})

    def log_image(self, name: str, path: Path) -> None:
        self.run.log({name: self.wandb.Image(str(path))})

    def finish(self) -> None:
        self.run.finish()


def make_logger(logger_cfg: dict, config: dict, run_dir: Path) -> NoLogger:
    name = logger_cfg.get("name", "none")
    if name not in LOGGERS:
        raise ConfigError(f"logger={name!r} is not one of {list(LOGGERS)}")
    if name == "none":
        return NoLogger()
    return WandbLogger(config, run_dir, logger_cfg.get("project", "uni-bench"),
                       logger_cfg.get("mode"), logger_cfg.get("run_name"))

"""A sweep's progress on the console with the submitit launchers
(``hydra/launcher=local`` or ``slurm``), whose jobs write their output to
``<sweep dir>/.submitit/<job id>/*_log.{out,err}``: a Hydra callback
(``hydra.callbacks.sweep_progress`` in ``conf/config.yaml``) that, while the jobs
run, prints a line whenever one of them finishes a batch, and at the end each job's last
lines (its summary table, or its error). The basic launcher runs jobs in the console's
own process, where their progress bars show as they are."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

POLL_SECONDS = 2.0
# the last state of a tqdm bar: "<description>:  40%|####  | 2/5 [..."
PROGRESS = re.compile(r"([^\r\n]*?):\s+\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
TAIL_LINES = 12  # a job's last output lines shown when the sweep ends


def job_state(err_log: Path) -> tuple[str, int, int] | None:
    """The last progress (description, done, total) in a job's stderr log."""
    try:
        text = err_log.read_text(errors="replace")[-4000:]
    except OSError:
        return None
    found = PROGRESS.findall(text)
    if not found:
        return None
    description, done, total = found[-1]
    return description.strip(), int(done), int(total)


class SweepProgress(Callback):
    """Prints the progress of every job of a submitit sweep (see the module)."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.stop = threading.Event()
        self.watcher: threading.Thread | None = None
        self.shown: dict[Path, tuple[str, int, int]] = {}

    def __getstate__(self) -> dict:  # pickled into every job with the launcher: no thread
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        if "submitit" not in str(launcher.get("_target_", "")):
            return
        # "%j" (the job id) is the submitit folder's last part: watch every job's folder
        self.folder = Path(str(launcher.submitit_folder).replace("%j", "")).resolve()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _logs(self, suffix: str) -> list[Path]:
        return sorted(self.folder.glob(f"*/*_log.{suffix}")) if self.folder else []

    def _report(self) -> None:
        for err_log in self._logs("err"):
            state = job_state(err_log)
            if state is not None and state != self.shown.get(err_log):
                self.shown[err_log] = state
                description, done, total = state
                print(f"[job {err_log.parent.name}] {description}: {done}/{total} images",
                      flush=True)

    def _watch(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            self._report()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.watcher is None:
            return
        self.stop.set()
        self.watcher.join()
        self._report()
        for out_log in self._logs("out"):
            err_log = out_log.with_name(out_log.name.replace("_log.out", "_log.err"))
            errors = [line for line in _lines(err_log) if line.startswith("error:")]
            tail = [line for line in _lines(out_log) if not line.startswith("submitit ")]
            print(f"[job {out_log.parent.name}]", *(errors or tail[-TAIL_LINES:]), sep="\n",
                  flush=True)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []

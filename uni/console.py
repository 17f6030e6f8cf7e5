"""What a command-line run shows and keeps (Hydra's ``hydra/job_logging: uni``,
``conf/hydra/job_logging/uni.yaml``): the log goes to ``run.log`` in the run
directory, created with its first line; warnings of the libraries (Captum's, on every
DeepLIFT batch) go there once each, never across the progress bar; the run's own
warnings (an image skipped) also reach the console, above the progress bar."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


class OncePerMessage(logging.Filter):
    """Passes each distinct message once (a warning raised on every batch is one line);
    ``repeats`` counts the ones held back."""

    def __init__(self, name: str = ""):
        super().__init__(name)
        self.seen: set[str] = set()
        self.repeats = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            self.repeats += 1
            return False
        self.seen.add(message)
        return True


class ProgressSafeHandler(logging.StreamHandler):
    """Writes above a tqdm progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never end a run
            self.handleError(record)


def capture_warnings() -> None:
    """Route Python warnings to the ``py.warnings`` logger (the log file, once each) for
    the rest of the process, every occurrence offered (the filter keeps one per text)."""
    import warnings

    warnings.simplefilter("always")
    logging.captureWarnings(True)

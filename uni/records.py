"""The record store: one row per image x method x metric (DESIGN §5), resumable.

Rows are written per batch as an atomically renamed part file under
``<run>/records.parts/``; :meth:`RecordStore.consolidate` merges them into
``<run>/records.parquet``. A rerun skips every ``(image_id, method, config_hash)`` already
stored, so a killed run loses at most the batch in flight and never duplicates a row.
Several processes may share a run directory (the shards of a cluster job): part files
have unique names and consolidation holds an exclusive lock on the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

try:
    import fcntl
except ImportError:  # Windows: no lock (one process per run directory there)
    fcntl = None

KEY = ["image_id", "method", "config_hash"]
COLUMNS = ["image_id", "split", "model", "method", "metric", "value", "config_hash", "seed"]
RECORDS_FILE = "records.parquet"
PARTS_DIR = "records.parts"
LOCK_FILE = ".records.lock"


def config_hash(settings: dict) -> str:
    """A short, order-independent hash of everything that changes a method's numbers."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a uniquely named file beside ``path``, then rename it over
    ``path``: readers see the old file or the new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write(tmp)
    os.replace(tmp, path)


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Held while a run directory's shared files are rewritten, so that two processes
    (the shards of a cluster job) finishing at once cannot each rewrite a file without
    the other's part (POSIX lock: local disks and NFS)."""
    if fcntl is None:
        yield
        return
    with open(Path(run_dir) / LOCK_FILE, "a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def has_records(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds records (consolidated, or only the parts of a run that
    was killed before it could merge them)."""
    run_dir = Path(run_dir)
    return (run_dir / RECORDS_FILE).exists() or any((run_dir / PARTS_DIR).glob("*.parquet"))


class RecordStore:
    """Records of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / PARTS_DIR
        self.parts.mkdir(parents=True, exist_ok=True)
        self._done: set[tuple[str, str, str]] | None = None

    def _read(self, path: Path) -> pd.DataFrame | None:
        try:
            with open(path, "rb") as handle:  # one open: a concurrent os.replace can't mix files
                return pd.read_parquet(handle)
        except FileNotFoundError:  # a part another process merged meanwhile
            return None
        except Exception as err:  # a file cut short by a kill: never trusted, never fatal
            warnings.warn(f"ignoring unreadable record file {path.name} ({type(err).__name__})")
            return None

    def load(self) -> pd.DataFrame:
        """Every stored row (consolidated file and parts), without duplicates."""
        return self._merge(sorted(self.parts.glob("*.parquet")))

    def _merge(self, parts: list[Path]) -> pd.DataFrame:
        frames = []
        main = self.run_dir / RECORDS_FILE
        if main.exists():
            frames.append(self._read(main))
        frames += [self._read(p) for p in parts]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=COLUMNS)
        frame = pd.concat(frames, ignore_index=True)
        frame = frame.drop_duplicates(subset=[*KEY, "metric"], keep="last")
        # a fixed order, so the same work gives the same file however it was split up
        return frame.sort_values([*KEY, "metric"], ignore_index=True)

    def done(self) -> set[tuple[str, str, str]]:
        if self._done is None:
            stored = self.load()
            self._done = set(zip(*(stored[k].astype(str) for k in KEY))) if len(stored) else set()
        return self._done

    def is_done(self, image_id: str, method: str, config: str) -> bool:
        return (image_id, method, config) in self.done()

    def write(self, rows: list[dict]) -> None:
        """One batch of rows, atomically (all or nothing)."""
        if not rows:
            return
        frame = pd.DataFrame(rows)
        _write_frame(frame, self.parts / f"part-{uuid.uuid4().hex}.parquet")
        self.done().update(zip(*(frame[k].astype(str) for k in KEY)))

    def consolidate(self) -> pd.DataFrame:
        """Merge the parts into ``records.parquet`` (atomically) and remove them; parts
        written meanwhile by another process stay for its own (or a later) merge."""
        with exclusive(self.run_dir):
            parts = sorted(self.parts.glob("*.parquet"))
            frame = self._merge(parts)
            _write_frame(frame, self.run_dir / RECORDS_FILE)
            for part in parts:
                part.unlink(missing_ok=True)
        return frame

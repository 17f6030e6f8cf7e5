"""The record store: one row per image x method x metric (docs/design.md §5), resumable.

Rows are written per batch as an atomically renamed part file under
``<run>/records.parts/``; :meth:`RecordStore.consolidate` merges them into
``<run>/records.parquet``. A rerun skips every ``(image_id, method, config_hash)`` already
stored, so a killed run loses at most the batch in flight and never duplicates a row.
Several processes may share a run directory (the shards of a cluster job): part files
have unique names and consolidation holds an exclusive lock on the directory.

Rows of a file carry its ``content_digest``: a stored row counts only for the same bytes,
so a file replaced under the same name is recomputed, and its new rows replace every row
of the old ones (the latest write of a key wins). Rows without a digest (records written
before digests existed, or of sources that are not files) count for any bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from uni.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no lock (one process per run directory there)
    fcntl = None

KEY = ["image_id", "method", "config_hash"]
DIGEST = "content_digest"
COLUMNS = ["image_id", "split", "model", "method", "metric", "value", "config_hash", "seed"]
RECORDS_FILE = "records.parquet"
# the other files of a run directory that the analysis reads back (written by
# uni.figure_data and uni.data.selection)
FIGURES_FILE = "figures.pt"
SELECTION_FILE = "data_selection.json"
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
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # a full disk or a kill mid-write leaves no orphan behind
        tmp.unlink(missing_ok=True)
        raise


STALE_SECONDS = 600  # a temporary file this old is no write in progress (another shard's)


def remove_stale_temporaries(directory: Path, older_than: float = STALE_SECONDS) -> int:
    """Remove the temporary files of :func:`atomic_write` under ``directory`` that a kill
    left behind (older than ``older_than`` seconds: younger ones may be another process's
    write in progress); how many were removed."""
    removed = 0
    now = time.time()
    for path in Path(directory).rglob(".*.tmp"):
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another process renamed or removed it meanwhile
            continue
    return removed


def write_text(path: Path, text: str) -> Path:
    """``text`` to ``path`` atomically (:func:`atomic_write`; a symlink at ``path`` is
    replaced, never written through); its directory is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> Path:
    """``frame`` to CSV, atomically (``index``: with its index, e.g. method, metric)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=index))
    return path


def write_figure(fig, path: Path, dpi: int = 120) -> Path:
    """A matplotlib figure to ``path`` (format from its suffix), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:]))
    return path


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


def saved_config(run_dir: str | Path):
    """The composed config Hydra saved in ``run_dir`` (``.hydra/config.yaml``, interpolations
    unresolved) as an OmegaConf ``DictConfig``, or ``None`` where there is none."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


# what tables and reports read from every row
REQUIRED = ["image_id", "model", "method", "metric", "value", "config_hash"]


def check_schema(frame: pd.DataFrame, path: Path) -> None:
    """A one-line :class:`~uni.errors.ConfigError` naming ``path`` unless its rows have
    every :data:`REQUIRED` column and a key (image, method, metric, config)."""
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ConfigError(f"{path}: not a records file: no column(s) {missing} (has "
                          f"{list(frame.columns)[:8]})")
    keyless = int(frame[[*KEY, "metric"]].isna().any(axis=1).sum())
    if keyless:
        raise ConfigError(f"{path}: {keyless} row(s) without an image_id, method, metric or "
                          "config_hash; rerun the experiment or remove them")


class RecordStore:
    """Records of one run directory. ``readonly``: for tables and reports, which write
    nothing into it and trust nothing unreadable: a records file that cannot be read, or
    lacks a column of :data:`REQUIRED`, or has rows without a key, is a one-line
    :class:`~uni.errors.ConfigError` naming the file (a run instead recomputes what an
    unreadable part held)."""

    def __init__(self, run_dir: str | Path, readonly: bool = False):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / PARTS_DIR
        self.readonly = readonly
        if not readonly:
            self.parts.mkdir(parents=True, exist_ok=True)
        self._done: dict[tuple[str, str, str], str | None] | None = None

    def _read(self, path: Path) -> pd.DataFrame | None:
        try:
            with open(path, "rb") as handle:  # one open: a concurrent os.replace can't mix files
                frame = pd.read_parquet(handle)
        except FileNotFoundError:  # a part another process merged meanwhile
            return None
        except Exception as err:  # a file cut short by a kill: never trusted
            if self.readonly:
                first = (str(err).strip().splitlines() or [""])[0][:120]
                raise ConfigError(f"{path}: unreadable records file ({type(err).__name__}: "
                                  f"{first})") from None
            warnings.warn(f"ignoring unreadable record file {path.name} ({type(err).__name__})")
            return None
        if self.readonly:
            check_schema(frame, path)
        return frame

    def load(self) -> pd.DataFrame:
        """Every stored row (consolidated file and parts), without duplicates."""
        return self._merge(sorted(self.parts.glob("*.parquet")))

    def _merge(self, parts: list[Path]) -> pd.DataFrame:
        """Parts in the order they were written (their names start with the time), so
        that the latest write of a key is the one kept, all its rows and only them."""
        frames = []
        main = self.run_dir / RECORDS_FILE
        if main.exists():
            frames.append(self._read(main))
        frames += [self._read(p) for p in parts]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=COLUMNS)
        frame = pd.concat([f.assign(_write=i) for i, f in enumerate(frames)],
                          ignore_index=True)
        latest = frame.groupby(KEY, sort=False)["_write"].transform("max")
        frame = frame[frame["_write"] == latest].drop(columns="_write")
        repeated = frame.duplicated(subset=[*KEY, "metric"], keep="last")
        if repeated.any():
            same = frame.duplicated(subset=[*KEY, "metric", "value"], keep="last")
            differ = int((repeated & ~same).sum())
            if differ:  # one write holding two values of one record: the last one counts
                warnings.warn(f"{self.run_dir}: {differ} record(s) stored twice with other "
                              "values in one write; the last one is used")
        frame = frame.drop_duplicates(subset=[*KEY, "metric"], keep="last")
        # a fixed order, so the same work gives the same file however it was split up
        return frame.sort_values([*KEY, "metric"], ignore_index=True)

    def done(self) -> dict[tuple[str, str, str], str | None]:
        """Each stored key and the digest of the bytes its rows were made from."""
        if self._done is None:
            self._done = {}
            self._remember(self.load())
        return self._done

    def _remember(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        digests = frame[DIGEST] if DIGEST in frame else pd.Series(None, index=frame.index)
        for key, digest in zip(zip(*(frame[k].astype(str) for k in KEY)), digests):
            self._done[key] = digest if isinstance(digest, str) else None

    def is_done(self, image_id: str, method: str, config: str, digest: str | None = None,
                ) -> bool:
        """Whether rows of this key are stored and made from a file with ``digest``
        (rows without a digest, or a call without one, match any bytes)."""
        key = (image_id, method, config)
        if key not in self.done():
            return False
        stored = self._done[key]
        return stored is None or digest is None or stored == digest

    def write(self, rows: list[dict]) -> None:
        """One batch of rows, atomically (all or nothing)."""
        if not rows:
            return
        frame = pd.DataFrame(rows)
        # named by time first: :meth:`_merge` reads parts in the order they were written
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _write_frame(frame, self.parts / name)
        self.done()
        self._remember(frame)

    def rewrite(self, change: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
        """Every stored row replaced by ``change(rows)``, atomically and under the
        directory's lock (e.g. re-keyed rows: :mod:`uni.rekey`); the parts are merged."""
        frame = self._merged_into_file(change)
        self._done = None
        return frame

    def consolidate(self) -> pd.DataFrame:
        """Merge the parts into ``records.parquet`` (atomically) and remove them; parts
        written meanwhile by another process stay for its own (or a later) merge."""
        return self._merged_into_file(lambda frame: frame)

    def _merged_into_file(self, change: Callable[[pd.DataFrame], pd.DataFrame]
                          ) -> pd.DataFrame:
        with exclusive(self.run_dir):
            parts = sorted(self.parts.glob("*.parquet"))
            frame = change(self._merge(parts))
            _write_frame(frame, self.run_dir / RECORDS_FILE)
            for part in parts:
                part.unlink(missing_ok=True)
        return frame

"""A Hugging Face ``datasets`` dataset (e.g. ``imagenet-1k``), streamed or downloaded."""

from __future__ import annotations

from pathlib import Path

from uni.data.base import ImageDataset
from uni.errors import ConfigError
from uni.hub import hub_unavailable, offline_mode


def load_hf_split(path: str, split: str, streaming: bool, limit: int | None, **kwargs):
    """Load a split; offline or without access, fail in one line that says what to do
    (before the download when the hub cannot be reached: the library retries for
    minutes)."""
    if from_hub(path) and not offline_mode():  # offline mode reads the local cache
        why = hub_unavailable()
        if why:
            raise ConfigError(
                f"data=hf: Hugging Face dataset {path!r} needs the hub and it cannot be "
                f"reached ({why}). Offline, use data=folder data.root=PATH, data=embedded, "
                f"or data.path=imagefolder data.data_dir=PATH")
    try:
        import datasets

        dataset = datasets.load_dataset(path, split=split, streaming=streaming, **kwargs)
    except Exception as err:
        raise ConfigError(
            f"data=hf: could not load Hugging Face dataset {path!r} split {split!r} "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); "
            f"it needs network access (and `huggingface-cli login` for gated sets such as "
            f"imagenet-1k). Offline, use data=folder data.root=PATH or data=embedded"
        ) from None
    if streaming and limit is not None:
        dataset = dataset.take(limit)
    return dataset


def from_hub(path: str) -> bool:
    """Whether ``datasets.load_dataset(path)`` reads the hub: not a local directory or
    one of the library's own loaders (``imagefolder``, ``csv``, ...)."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return path not in _PACKAGED_DATASETS_MODULES and not Path(path).expanduser().exists()


def _label(value) -> int:
    """A row's class index; -1 when the dataset has none (``None``)."""
    return -1 if value is None else int(value)


class HFDataset(ImageDataset):
    """Rows of a HF dataset; ``image_id`` is ``<path>/<split>/<row index>``. Options other
    than these go to ``datasets.load_dataset`` (e.g. ``data_dir``: ``path="imagefolder",
    data_dir=ROOT`` reads ``ROOT/<split>/<class>/*`` offline)."""

    def __init__(
        self,
        path: str,
        data_config: dict,
        split: str = "validation",
        streaming: bool = True,
        image_column: str = "image",
        label_column: str | None = "label",
        limit: int | None = None,
        **load_kwargs,
    ):
        rows = load_hf_split(path, split, streaming, limit, **load_kwargs)
        self.image_column = image_column
        if streaming:  # a stream is read once: keep the (limited) rows
            self.rows = None
            sources = [(index, row) for index, row in enumerate(rows)]
        else:  # random access: read each row when it is needed
            self.rows = rows
            count = len(rows) if limit is None else min(limit, len(rows))
            labels = rows[label_column][:count] if label_column in rows.column_names else None
            sources = [(i, {label_column: labels[i]} if labels else {}) for i in range(count)]
        items = [
            (f"{path}/{split}/{index}", row if streaming else index,
             _label(row[label_column]) if label_column and label_column in row else -1)
            for index, row in sources
        ]
        super().__init__(items, data_config)

    def open_source(self, source):
        row = source if self.rows is None else self.rows[source]
        # datasets decodes the Image feature to a PIL image; rows have no file to digest
        return row[self.image_column], None

"""Which images a run used and whether it is held out from tuning, read back from the
``data_selection.json`` that :func:`uni.data.selection.write_selection` wrote beside its
records (a REPORT phrase; no dataset is opened, so neither torch nor the data package is
imported)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from uni.records import SELECTION_FILE


def read_selection(run_dir: str | Path) -> dict | None:
    """The run's selection (:func:`write_selection`; its shards' image ids joined), or
    ``None`` without one."""
    parts = [json.loads(p.read_text())
             for p in sorted(Path(run_dir).glob(SELECTION_FILE.replace(".json", "*.json")))]
    if not parts:
        return None
    return {**parts[0], "image_ids": [i for part in parts for i in part["image_ids"]]}


def base_id(image_id: str) -> str:
    """The clean image an id stands for (ImageNet-C ids are ``<base id>|<c>/<s>``)."""
    return image_id.split("|", 1)[0]


def held_out_line(run_dir: str | Path, image_ids: Sequence[str]) -> str:
    """A REPORT phrase: which subset the run's images (``image_ids``, its records') came
    from and whether the run is held out from tuning; a run without a selection file, or
    whose images overlap the tuning subset, is never called held-out."""
    selection = read_selection(run_dir)
    if selection is None:
        return ("images from an unrecorded selection (the run predates "
                f"`{SELECTION_FILE}`): not held-out")
    subset = selection.get("subset", "all")
    tune = set(selection.get("tune_ids") or [])
    overlap = len({base_id(i) for i in image_ids} & tune)
    what = (f"images from subset `{subset}` ({selection.get('sample')} order, sample_seed "
            f"{selection.get('sample_seed')})")
    if not selection.get("tune_ids"):
        return f"{what}; the data has no tuning subset: not held-out"
    if overlap:
        return f"{what}; {overlap} of them in the tuning subset: **not held-out**"
    return f"{what}; none in the {len(tune)}-image tuning subset: held-out"

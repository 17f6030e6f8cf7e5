"""Which images of a dataset a run takes, and in what order (the experimental-design issue).

Two steps, both keyed on ``data.sample_seed`` and the image ids (:mod:`uni.rng`), never on
the run's ``seed``, the experiment or the model, so every experiment, model and seed of a
study sees the same images:

1. **Subset** (``data.subset``): a folder split is cut into disjoint named parts by a
   keyed, class-stratified shuffle: ``tune`` (the first ``tune_size`` images of that
   shuffle; where defaults are chosen) and ``eval`` (the rest; where they are judged);
   ``all`` is every image. ``null`` is the dataset's default: ``eval`` for a folder
   (:data:`DEFAULT_SUBSET`) larger than the tuning subset, ``all`` elsewhere.
2. **Order** (``data.sample``): ``random`` (a keyed, class-stratified shuffle of the
   subset) or ``sorted`` (the listing order); ``null`` is the dataset's default:
   ``random``, or ``sorted`` for a stream (``hf``), which is read in its own order.
   ``data.start`` / ``data.limit`` then take a window of that order: ``data.limit=N`` is a
   random sample of N images, the same N in every experiment.

Class-stratified: images are ranked within their class by a keyed hash, classes are
ordered by a keyed hash, and the order takes every class's first image, then every
class's second, and so on; so any prefix holds the classes as evenly as the data allows.
Images without a label (-1) are each a class of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from uni import rng
from uni.errors import ConfigError
from uni.records import SELECTION_FILE, write_text

SUBSETS = ("tune", "eval", "all")
SAMPLES = ("random", "sorted")
DEFAULT_SUBSET = {"folder": "eval"}  # datasets whose default subset is not ``all``
TUNE_SIZE = 100
# datasets whose items can be cut into subsets or reordered before they are read
# (``hf`` streams: its order is the stream's)
ARRANGEABLE = ("embedded", "folder", "imagenet_c")
# the data options of this module: they choose images, so they stay out of record keys
SELECTION_ORDER = ("subset", "sample", "sample_seed", "tune_size")
# experiments that choose defaults: they run on the tuning subset only
TUNING_EXPERIMENTS = ("uni_ablation", "baseline_ablation", "calibration", "topk_calibration")


def stratified_order(items: Sequence[tuple], seed: int, purpose: str) -> list[tuple]:
    """``items`` (``(image_id, source, label)``) in the keyed class-stratified order of
    the module docstring (depends only on the ids, labels, ``seed`` and ``purpose``)."""
    def key(image_id: str) -> int:
        return rng.stable_seed(seed, image_id, purpose)

    classes: dict[object, list[tuple]] = {}
    for item in items:
        label = item[2] if item[2] >= 0 else ("unlabelled", item[0])
        classes.setdefault(label, []).append(item)
    ranked = []
    for members in classes.values():
        members.sort(key=lambda item: key(item[0]))
        class_key = key(f"class/{members[0][2]}") if members[0][2] >= 0 else key(members[0][0])
        ranked += [(rank, class_key, item) for rank, item in enumerate(members)]
    ranked.sort(key=lambda row: (row[0], row[1]))
    return [row[2] for row in ranked]


def resolve_subset(name: str, subset: str | None, size: int | None = None,
                   tune_size: int = TUNE_SIZE) -> str:
    """``data.subset`` of dataset ``name`` with ``null`` resolved (module docstring); a
    split of ``size`` images no larger than the tuning subset has no evaluation part, so
    its default is ``all`` (a small folder of one's own runs whole, never held-out)."""
    if subset is not None:
        return subset
    if size is not None and size <= tune_size:
        return "all"
    return DEFAULT_SUBSET.get(name, "all")


def resolve_sample(name: str, sample: str | None) -> str:
    """``data.sample`` of dataset ``name`` with ``null`` resolved: ``random`` where the
    dataset can be reordered (:data:`ARRANGEABLE`), else ``sorted`` (a stream's order)."""
    if sample is not None:
        return sample
    return "random" if name in ARRANGEABLE else "sorted"


def check_arrangement(name: str, subset: str | None, sample: str | None) -> None:
    """One-line errors for a subset or order that cannot apply to dataset ``name``."""
    sample = resolve_sample(name, sample)
    if sample not in SAMPLES:
        raise ConfigError(f"data.sample={sample!r} is not one of {list(SAMPLES)}")
    if subset is not None and subset not in SUBSETS:
        raise ConfigError(f"data.subset={subset!r} is not one of {list(SUBSETS)} or null")
    if name in ARRANGEABLE:
        return
    if resolve_subset(name, subset) != "all" or sample != "sorted":
        raise ConfigError(f"data={name} is read in its own order: data.subset={subset} and "
                          f"data.sample={sample} do not apply (use data.subset=all "
                          "data.sample=sorted)")


def check_tuning_subset(experiment: str | None, data: dict) -> None:
    """A tuning experiment (:data:`TUNING_EXPERIMENTS`) on images other than the tuning
    subset is a one-line error: defaults chosen there would be judged on their own
    images."""
    if experiment not in TUNING_EXPERIMENTS:
        return
    name = data.get("base") if data.get("name") == "imagenet_c_synthetic" else data.get("name")
    subset = resolve_subset(name, data.get("subset"))
    if subset != "tune":
        raise ConfigError(f"experiment={experiment} chooses defaults: it runs on "
                          f"data.subset=tune only, not {subset} (the evaluation images "
                          "must not tune what they judge)")


def tuning_items(items: Sequence[tuple], sample_seed: int = 0,
                 tune_size: int = TUNE_SIZE) -> list[tuple]:
    """The ``tune`` subset of ``items``: the first ``tune_size`` of the keyed
    class-stratified order for ``"data/subset"``."""
    return stratified_order(items, sample_seed, "data/subset")[:tune_size]


def arrange(items: Sequence[tuple], subset: str = "all", sample: str = "random",
            sample_seed: int = 0, tune_size: int = TUNE_SIZE) -> list[tuple]:
    """``items`` cut to ``subset`` and put in ``sample`` order (module docstring). A subset
    that would be empty (``eval`` of a split no larger than ``tune_size``) is an error."""
    if subset == "all":
        chosen = list(items)
    else:
        tune = {item[0] for item in tuning_items(items, sample_seed, tune_size)}
        chosen = [item for item in items if (item[0] in tune) == (subset == "tune")]
        if not chosen:
            raise ConfigError(f"data.subset={subset}: no images (the split has {len(items)}, "
                              f"the tuning subset takes {tune_size}); use data.subset=all")
    if sample == "sorted":
        return chosen
    return stratified_order(chosen, sample_seed, "data/sample")


def write_selection(run_dir: str | Path, dataset) -> Path:
    """``<run_dir>/data_selection.json``: how the dataset's images were chosen (its
    ``selection``: subset, sample, sample_seed, tune_size, start, limit, shard; see
    :func:`uni.data.build_dataset`), its image ids in the order run and the tuning
    subset's ids (``null`` where the data has no subsets); the REPORT reads it
    (:func:`uni.analysis.selection.held_out_line`)."""
    selection = getattr(dataset, "selection", {})
    shards = selection.get("num_shards", 1)
    name = SELECTION_FILE if shards <= 1 else SELECTION_FILE.replace(
        ".json", f".shard{selection['shard']}of{shards}.json")  # shards may share a directory
    path = Path(run_dir) / name
    tune_ids = getattr(dataset, "tune_ids", None)
    data = {**selection, "image_ids": [i[0] for i in dataset.items],
            "tune_ids": None if tune_ids is None else sorted(tune_ids)}
    return write_text(path, json.dumps(data, indent=1) + "\n")

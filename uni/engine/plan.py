"""A run's cost without running it: one calibration batch explained and scored as the run
would (nothing stored), timed per stage, its model passes counted, scaled to the run's
images (``uni --plan``)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from uni.data import ImageDataset
from uni.engine.job import Job, prepare, run_dataset
from uni.engine.loop import batch_rows
from uni.errors import RunError
from uni.profiling import PassLog
from uni.records import RecordStore


@dataclass
class Plan:
    """What a run will cost, from one calibration batch on the current device: images of
    this shard (and of all shards), seconds per image per stage, model passes per image
    (rows without and with an input gradient), setup seconds (model and data)."""

    experiment: str
    images: int
    all_images: int
    num_shards: int
    calibration_images: int
    stages: dict[str, float]  # seconds per image
    forward_rows: float  # per image
    gradient_rows: float  # per image
    setup_seconds: float
    device: str
    figure_images: int = 0  # the first images, whose figure data is kept (stage "figures")

    @property
    def seconds_per_image(self) -> float:
        return sum(self.stages.values())

    @property
    def estimate_seconds(self) -> float:
        figures = self.stages.get("figures", 0.0)
        return (self.setup_seconds + self.images * (self.seconds_per_image - figures)
                + min(self.images, self.figure_images) * figures)

    def lines(self) -> list[str]:
        hours = self.estimate_seconds / 3600
        stages = sorted(self.stages.items(), key=lambda kv: -kv[1])
        out = [
            f"plan {self.experiment}: {self.images} images on {self.device}; calibrated on "
            f"{self.calibration_images} image(s)",
            f"  model passes per image: {self.forward_rows:.0f} forward, "
            f"{self.gradient_rows:.0f} forward+backward",
            f"  seconds per image: {self.seconds_per_image:.2f} ("
            + ", ".join(f"{k} {v:.2f}" for k, v in stages) + ")",
            f"  estimated wall time: {self.estimate_seconds:.0f} s ({hours:.2f} h) "
            f"including {self.setup_seconds:.0f} s setup",
        ]
        if self.num_shards > 1:
            every = (self.num_shards * self.setup_seconds + self.all_images
                     * (self.seconds_per_image - self.stages.get("figures", 0.0)))
            out.append(f"  per shard (this one of {self.num_shards}); all {self.all_images} "
                       f"images: {every:.0f} process-seconds ({every / 3600:.2f} h)")
        return out


def first_readable(dataset: ImageDataset, n: int) -> list:
    """The first ``n`` samples of ``dataset`` that could be read."""
    samples = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if sample.image is not None:
            samples.append(sample)
        if len(samples) == n:
            break
    return samples


def calibrate(job: Job, samples: list) -> tuple[float, PassLog]:
    """Explain and score ``samples`` as a run does, storing nothing (records go to a
    temporary directory; use a job without attribution store), timed per stage in
    ``job.clock``: the wall seconds and the model calls made (:class:`PassLog`)."""
    log = job.clock.passes = PassLog().attach(job.model)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            batch_rows(job, RecordStore(scratch), samples)
    finally:
        log.detach()
    return time.perf_counter() - start, log


def plan(cfg: dict, run_dir: str | Path, calibration_images: int = 1,
         announce: Callable[[str], None] | None = None) -> Plan:
    """The cost of ``cfg``'s run without running it: the first ``calibration_images``
    readable images are explained and scored (:func:`calibrate`: nothing is stored),
    timed per stage, with the model's passes counted; the estimate scales that to the
    run's images. ``announce`` is told, once the config is checked, that the wait for
    those images starts (one robustness image with its attacks takes minutes on a CPU)."""
    ready = prepare({**cfg, "attribution_store": "off"}, run_dir)
    job, dataset = ready.job, ready.dataset
    data = cfg["data"]
    shards = int(data.get("num_shards", 1) or 1)
    all_images = len(dataset)
    if shards > 1:
        unsharded = {**data, "shard": 0, "num_shards": 1}
        all_images = len(run_dataset(unsharded, job.model.data_config)[0])
    samples = first_readable(dataset, calibration_images)
    if not samples:
        raise RunError("plan: no readable image in the selection to calibrate on")
    if announce is not None:
        announce(f"plan: explaining and scoring {len(samples)} image(s) as the run would "
                 "(as long as that many images of the run take), nothing stored ...")
    _, log = calibrate(job, samples)
    n = len(samples)
    return Plan(
        experiment=str(cfg.get("experiment") or "run"), images=len(dataset),
        all_images=all_images, num_shards=shards, calibration_images=n,
        stages={k: v / n for k, v in job.clock.seconds.items()},
        forward_rows=log.rows(grad=False) / n, gradient_rows=log.rows(grad=True) / n,
        setup_seconds=ready.setup_seconds, device=str(job.device),
        figure_images=len(job.figures.ids),
    )

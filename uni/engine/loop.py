"""Batches -> methods -> metrics -> records: the one loop every experiment runs. What a
method or metric needs of it is a field of its spec (:class:`~uni.methods.MethodSpec`,
:class:`~uni.metrics.MetricSpec`): the loop names none."""

from __future__ import annotations

import inspect
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from uni.attribution_store import join, split
from uni.cost import save_cost
from uni.data import collate
from uni.data.selection import write_selection
from uni.engine.job import (
    FAULT_NOTE,
    Job,
    Prepared,
    RunSummary,
    save_config,
    unusable_methods,
)
from uni.errors import RunError
from uni.loggers import NoLogger
from uni.methods import METHODS, explain
from uni.metrics import REGISTRY, MetricSpec, get_metric
from uni.metrics._common import scores_by_output
from uni.metrics.score_cache import ScoreCache
from uni.models import OUTPUTS
from uni.profiling import PassLog
from uni.records import DIGEST, RecordStore, remove_stale_temporaries


def value_rows(base: dict, values: dict[str, torch.Tensor], i: int,
               spec: MetricSpec) -> list[dict]:
    """One row per value name of image ``i`` of ``values`` (what ``spec``'s metric
    returned), each with ``base``; a value that is not finite gets a note why (the
    metric's :attr:`~uni.metrics.MetricSpec.skip_note`, else a numerical fault)."""
    rows = []
    for record, column in values.items():
        value = float(column[i])
        note = None
        if not math.isfinite(value):
            note = (spec.skip_note and spec.skip_note(record, values, i)) or FAULT_NOTE
        rows.append({**base, "metric": record, "value": value, "note": note})
    return rows


def call_metric(fn, **available):
    """Call a metric with the keyword arguments it declares (``explainer`` only reaches
    the metrics that explain again)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return fn(**available)
    return fn(**{k: v for k, v in available.items() if k in parameters})


def skipped_rows(job: Job, store: RecordStore, sample) -> list[dict]:
    """A ``skipped`` record per method and eval entry (under the entry's key, so the
    entry's values replace it once the file can be read) for an image that could not be
    read."""
    return [
        {
            "image_id": sample.image_id, "split": job.split, "model": job.model.name,
            "method": method, "metric": "skipped", "value": float("nan"), "config_hash": h,
            "seed": job.seed, "note": sample.skip_reason, "label": sample.label, "target": -1,
            DIGEST: sample.digest, **sample.meta,
        }
        for method, keys in job.keys.entries.items() for h in keys.values()
        if not store.is_done(sample.image_id, method, h, sample.digest)
    ]


def batch_rows(job: Job, store: RecordStore, samples: list) -> tuple[list[dict], int]:
    """Records of every method x metric for the readable images of one batch, and how
    many image x method pairs were already stored."""
    x = torch.stack([s.image for s in samples]).to(job.device)
    labels = torch.tensor([s.label for s in samples], device=job.device)
    with job.clock.stage("predict", images=len(samples)):
        with torch.no_grad():
            target = job.model(x).argmax(-1)
        if job.target == "label":
            target = torch.where(labels >= 0, labels, target)
        # F_c(x) once per image under every output, shared by every method and metric
        score_inputs = scores_by_output(job.model, x.__getitem__, target, OUTPUTS,
                                        job.eval_batch)
    score_input = score_inputs[job.output]
    # F_c of perturbed images, shared by the metric entries (and methods) of this batch
    cache = ScoreCache()
    rows, stored = [], 0
    for method, keys in job.keys.entries.items():
        # per eval entry, the batch images whose records of it are not stored
        missing = {entry: {i for i, s in enumerate(samples)
                           if not store.is_done(s.image_id, method, h, s.digest)}
                   for entry, h in keys.items()}
        todo = sorted(set().union(*missing.values()))
        stored += len(samples) - len(todo)
        # stored images whose figure data a killed run never saved: explained again for
        # the figures, without new records
        redo = [i for i, s in enumerate(samples) if i not in todo
                and s.image_id in job.figures.ids and not job.figures.has(method, s.image_id)]
        if redo:
            index, ids, result = explain_subset(job, method, x, target, samples, redo)
            with job.clock.stage("figures"):
                keep_for_figures(job, method, x[index], target[index], ids, result,
                                 score_input[index], score_inputs["prob"][index], cache)
        if not todo:
            continue
        index, ids, result = explain_subset(job, method, x, target, samples, todo)
        job.tally.add(method, result.attributions)
        for name, options in job.metrics.items():
            # only the images this entry has no records of (a metric added to a run)
            need = [j for j, i in enumerate(todo) if i in missing[name]]
            if not need:
                continue
            sub = torch.tensor(need, device=job.device)
            options = dict(options)
            spec = REGISTRY[options["metric"]]
            fn = get_metric(options.pop("metric"))
            # an entry's own output (OUTPUT_PER_ENTRY) wins over the run's for its scores
            output = options.pop("output", job.output)
            with job.clock.stage(f"metric/{name}", method, len(need)):
                value = call_metric(
                    fn, model=job.model, x=x[index[sub]],
                    attributions=result.attributions[sub], target=target[index[sub]],
                    batch_size=job.eval_batch, score_input=score_inputs[output][index[sub]],
                    explainer=job.explainer(method),
                    baselines=None if result.baselines is None else result.baselines[sub],
                    cache=cache, output=output, image_ids=[ids[j] for j in need],
                    seed=job.seed, **options,
                )
            values = value if isinstance(value, dict) else {name: value}
            for n, j in enumerate(need):
                i = todo[j]
                base = {
                    "image_id": ids[j], "split": job.split, "model": job.model.name,
                    "method": method, "config_hash": keys[name], "seed": job.seed,
                    "label": samples[i].label, "target": int(target[i]),
                    DIGEST: samples[i].digest, **samples[i].meta,
                    **{k: float(v[j]) for k, v in result.diagnostics.items()},
                }
                rows += value_rows(base, values, n, spec)
        with job.clock.stage("figures"):
            keep_for_figures(job, method, x[index], target[index], ids, result,
                             score_input[index], score_inputs["prob"][index], cache)
    return rows, stored


def explain_subset(job: Job, method: str, x, target, samples: list, rows: list[int]):
    """``method``'s explanation of the batch images at ``rows``: their index into the
    batch, their ids and the result; images whose explanation is in the job's
    attribution store are read from it, the others explained and stored."""
    index = torch.tensor(rows, device=job.device)
    ids = [samples[i].image_id for i in rows]
    key = job.keys.explanations[method]
    parts = {}
    if job.store is not None:
        for j, i in enumerate(rows):
            stored = job.store.get(key, ids[j], samples[i].digest)
            if stored is not None:
                parts[j] = stored
    compute = [j for j in range(len(rows)) if j not in parts]
    result = None
    if compute:
        where = index[compute]
        with job.clock.stage(f"explain/{method}", method, len(compute)):
            options, spec = job.methods[method], METHODS[job.kinds[method]]
            if spec.stored_options is not None:
                options = spec.stored_options(options, job.stored_explanations(
                    [ids[j] for j in compute], [samples[rows[j]].digest for j in compute]))
            result = explain(job.model, x[where], target[where], job.kinds[method],
                             output=job.output, image_ids=[ids[j] for j in compute],
                             seed=job.seed, **options)
    if job.store is None:
        return index, ids, result
    if result is not None:
        with job.clock.stage("io"):
            for j, tensors in zip(compute, split(result)):
                job.store.put(key, ids[j], samples[rows[j]].digest, tensors)
                parts[j] = tensors
    return index, ids, join([parts[j] for j in range(len(rows))], job.device)


def keep_for_figures(job: Job, method: str, x, target, ids, result, score_input, probability,
                     cache: ScoreCache | None = None) -> None:
    """Keep what the figures need for the first ``figures.images`` images: the image, its
    explained class and that class's ``probability``, attributions, baseline, ``F_c``
    along the path and each metric's figure curve (:attr:`MetricSpec.figure_curve
    <uni.metrics.MetricSpec>`; perturbed images read from the batch's ``cache``, where
    the metrics scored them)."""
    rows = [j for j, image_id in enumerate(ids) if image_id in job.figures.ids]
    if not rows:
        return
    index = torch.tensor(rows, device=x.device)
    options = {"output": job.output, "batch_size": job.eval_batch, "cache": cache}
    curves = {  # in the run's output (as score_input), whatever the entry's own output
        f"{name}_curves": spec.figure_curve(
            job.model, x[index], result.attributions[index], target[index],
            score_input=score_input[index], **options, **{
                k: v for k, v in job.metric_options.get(name, {}).items()
                if k not in ("metric", "output")})
        for name, spec in REGISTRY.items() if spec.figure_curve is not None
    }
    for n, j in enumerate(rows):
        job.figures.keep("images", "", ids[j], x[j])
        job.figures.keep("targets", "", ids[j], target[j])
        job.figures.keep("probabilities", "", ids[j], probability[j])
        kept = {"attributions": result.attributions[j], "baselines": result.baselines,
                "path_scores": result.path_scores,
                **{kind: curve[n] for kind, curve in curves.items()}}
        for kind, value in kept.items():
            if value is not None:
                value = value[j] if kind in ("baselines", "path_scores") else value
                job.figures.keep(kind, method, ids[j], value)


def execute(ready: Prepared, run_dir: str | Path, logger: NoLogger) -> RunSummary:
    """Run a prepared job over its dataset: records, figure data and the cost log go to
    ``run_dir``, progress to ``logger`` (the caller's to finish)."""
    start = time.perf_counter() - ready.setup_seconds
    save_config(ready.cfg, Path(run_dir))
    job, dataset = ready.job, ready.dataset
    ids = [item[0] for item in dataset.items]
    store = RecordStore(run_dir)
    write_selection(run_dir, dataset)
    remove_stale_temporaries(store.parts)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=ready.batch_size, collate_fn=collate, num_workers=ready.num_workers
    )
    job.clock.passes = PassLog(replay=False).attach(job.model)  # cost.json: passes per method
    images = skipped = stored = 0
    # the run directory names a sweep's job (uni.sweep_progress shows this line per job)
    description = f"{Path(run_dir).name}: {job.model.name} x {len(job.keys.entries)} methods"
    progress = tqdm(total=len(dataset), unit="img", desc=description)
    try:
        for batch in loader:
            rows = []
            for sample in batch:
                if sample.image is None:
                    skipped += 1
                    rows += skipped_rows(job, store, sample)
            good = [s for s in batch if s.image is not None]
            if good:
                new_rows, already = batch_rows(job, store, good)
                rows += new_rows
                stored += already
            with job.clock.stage("io"):
                store.write(rows)  # one atomic write per batch
                job.figures.save()
            # with the batch's records: a run killed later (a session's end) keeps both
            save_cost(run_dir, job.clock, job.device)
            images += len(batch)
            progress.update(len(batch))
            elapsed = time.perf_counter() - start
            logger.log({"images": images, "skipped": skipped, "images_per_s": images / elapsed})
    finally:  # also on Ctrl-C: what finished is merged, the batch in flight is redone
        progress.close()
        job.clock.passes.detach()
        records = store.consolidate()
        save_cost(run_dir, job.clock, job.device)  # what came after the last batch
    problems = unusable_methods(job, records, ids)
    if problems:  # the records stay: they show what the settings gave
        raise RunError("; ".join(problems) + f" (records kept in {Path(run_dir)})")
    mine = records[records["config_hash"].isin(job.keys.all()) & records["image_id"].isin(ids)]
    held_out = (len(getattr(dataset, "tune_ids", None) or ())
                if getattr(dataset, "selection", {}).get("subset") == "eval" else 0)
    return RunSummary(images, skipped, stored, time.perf_counter() - start, Path(run_dir),
                      mine.reset_index(drop=True), held_out)

"""The GPU path measured in one prepared run (``bash benchmarks/device.sh``): one JSON file.

Sections, each timed, time-boxed and failure-isolated (a section that fails or runs out
of its box records ``status`` and ``error`` and the rest go on; the file is rewritten
after every section, so a run killed at its limit keeps what finished):

- ``environment``: device, torch, CUDA, threads;
- ``batch_sweep``: per model, per-image ms of forward+backward and forward at each batch
  size (:func:`model_runtime.sweep`); the chosen ``internal_batch_size`` (forward+backward)
  and ``eval_batch_size`` (forward) are the smallest within 5 % of the fastest, and the
  sections below use them; ``recommended`` (the default model's) is what
  ``batch_sizes.*.cuda`` in ``conf/config.yaml`` should hold;
- ``paths_vs_saliency``: Blur IG and Guided IG against PAIR ``saliency`` per image
  (:func:`paths_vs_saliency.compare`);
- ``ig_vs_captum``, ``mufidelity_vs_quantus``, ``uni_vs_floor`` (:mod:`run`'s benches);
- ``images_per_hour``: ``experiment=faithfulness`` at the paper profile per model
  (EfficientNet-Lite0; ``resnet50`` and ``vit_base_patch16_224`` with random weights, the
  same cost as trained ones), from :func:`uni.engine.plan.plan` after a warm-up;
- ``precision``: IG per model at fp32, tf32 and bf16: seconds per image and the
  attributions' relative L1 distance to fp32;
- ``experiments``: every experiment against its model-pass floor
  (:func:`experiments.bench_experiment`), one time box each;
- ``compile``: ``runtime.compile`` off and on: IG seconds per image, the first call
  (compilation) and the relative L1 distance (last: inductor's first build is the slowest
  and least needed part).

Every section records ``seconds`` and ``peak_memory_mb`` (CUDA: the allocator's peak
during the section; CPU: the process's resident high-water mark so far). ``summary``
holds the headline ratios. ``--dry``: the same sections at tiny settings (small inputs,
few steps, one image) on this CPU; the exit status is 1 if a section failed there or a
key is missing, so CI's dry run checks that the script runs.

    python benchmarks/device.py [--dry] [--out FILE] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import platform
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import experiments  # benchmarks/experiments.py
import model_runtime  # benchmarks/model_runtime.py
import paths_vs_saliency  # benchmarks/paths_vs_saliency.py
import run as bench  # benchmarks/run.py
import torch

from uni.data import build_dataset
from uni.engine.plan import plan
from uni.methods import explain
from uni.methods.unlearning import uni_baseline
from uni.models import load_model, set_runtime

MODELS = {  # name -> its model overrides (conf/model)
    "efficientnet_lite0": ["model=efficientnet_lite0"],
    "resnet50": ["model=resnet50", "model.pretrained=false"],
    "vit_base_patch16_224": ["model=vit_base_patch16_224", "model.pretrained=false"],
}
DEFAULT_MODEL = "efficientnet_lite0"
PRECISIONS = ("fp32", "tf32", "bf16")
# within this fraction of the fastest per-image time, the smallest batch is chosen
BATCH_TOLERANCE = 0.05


@dataclass(frozen=True)
class Settings:
    """How much each section does; :data:`FULL` on the GPU, :data:`DRY` on a CPU."""

    images: int  # embedded photos per comparison
    pair_images: int  # of them, through PAIR saliency (one image at a time)
    steps: int  # IG steps
    subsets: int  # MuFidelity perturbations per image
    pgd_steps: int  # UNI's search steps
    repeats: int  # timed calls after the warm-up (best kept)
    batches: tuple[int, ...]  # the sweep's batch sizes
    sweep_images: int  # images per timed sweep call (at least)
    plan_images: int  # calibration images per images-per-hour estimate
    experiment_images: int
    experiment_overrides: tuple[str, ...]  # added to every experiment's
    input_size: int | None  # None: each model's own
    compile_model: str  # the model compiled (section compile)
    # torch.compile's backend: None, its default (inductor); the dry run traces with
    # dynamo alone ("eager"): inductor's C++ build of one model takes minutes on a CPU
    compile_backend: str | None
    budget_s: float  # the whole run
    # seconds per section; per part (model, experiment) where a section has parts
    boxes: dict[str, float] = field(default_factory=dict)


FULL = Settings(
    images=8, pair_images=4, steps=32, subsets=128, pgd_steps=20, repeats=2,
    batches=(8, 16, 32, 64, 128, 256), sweep_images=64, plan_images=3, experiment_images=2,
    experiment_overrides=(), input_size=None, compile_model=DEFAULT_MODEL, compile_backend=None,
    # the boxes add up to more than the budget: they bound a section that hangs, and most
    # finish well inside them; compile (inductor's first build) comes last, the least needed
    budget_s=500,
    boxes={"environment": 10, "batch_sweep": 20, "paths_vs_saliency": 45, "ig_vs_captum": 25,
           "mufidelity_vs_quantus": 30, "uni_vs_floor": 25, "images_per_hour": 60,
           "precision": 20, "experiments": 30, "compile": 75},
)
DRY = Settings(
    images=1, pair_images=1, steps=2, subsets=4, pgd_steps=1, repeats=1, batches=(1, 2),
    sweep_images=2, plan_images=1, experiment_images=1,
    # ++: set where the experiment has the entry, added (and unused) where it has not
    # two methods (a static baseline and UNI): the dry run checks that each experiment
    # runs; every method of it would take minutes on a CPU (25 in faithfulness)
    experiment_overrides=("method=[ig_black,uni]", "attribution.steps=2",
                          "+model.input_size=[3,32,32]",
                          "++eval.mufidelity.subsets=4", "++method.uni.pgd_steps=1",
                          "++eval.robustness.steps=1", "++eval.robustness.surrogate_steps=1",
                          "++eval.stability.budgets=[1,2]", "++eval.stability.reference=4"),
    input_size=32, compile_model=DEFAULT_MODEL, compile_backend="eager", budget_s=300,
    # generous: the dry run checks that every section runs, not how fast (a shared CPU)
    boxes=dict.fromkeys(("environment", "batch_sweep", "paths_vs_saliency", "ig_vs_captum",
                         "mufidelity_vs_quantus", "uni_vs_floor", "images_per_hour",
                         "precision", "compile", "experiments"), 60),
)
# per model (images_per_hour, precision, batch_sweep) or per experiment: each its own box
PER_MODEL = ("batch_sweep", "images_per_hour", "precision")


class OutOfTime(Exception):
    """A section's time box ran out."""


@contextlib.contextmanager
def time_box(seconds: float):
    """Raise :class:`OutOfTime` in this (the main) thread after ``seconds``."""

    def expire(signum, frame):
        raise OutOfTime(f"time box of {seconds:.0f} s ran out")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def on_cuda() -> bool:
    return torch.cuda.is_available()


def peak_memory_mb() -> float:
    if on_cuda():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Device:
    """What the sections share: settings, loaded models, photos and the sweep's batches."""

    def __init__(self, settings: Settings, dry: bool):
        self.settings, self.dry = settings, dry
        self.device = torch.device("cuda" if on_cuda() else "cpu")
        self._plain: dict[str, torch.nn.Module] = {}
        self._photos: dict[str, tuple] = {}
        # the sweep's choices per model; before it (or if it failed): the config's defaults
        self.batches: dict[str, dict[str, int]] = {}

    def model_options(self, name: str) -> dict:
        size = self.settings.input_size
        # EfficientNet-Lite0's weights are installed; the others' random weights cost the same
        options = {"pretrained": name == DEFAULT_MODEL}
        if size:
            options["input_size"] = (3, size, size)
        if self.dry:  # one block per stage: the dry run checks, never measures
            if name.startswith("vit"):
                options.update(img_size=size, patch_size=8, depth=1)
            elif name == "resnet50":
                options["layers"] = (1, 1, 1, 1)
        return options

    def model_overrides(self, name: str) -> list[str]:
        """``name``'s config overrides, with :meth:`model_options` (dry run)."""
        extra = [f"+model.{k}=" + (f"[{','.join(map(str, v))}]" if isinstance(v, tuple) else str(v))
                 for k, v in self.model_options(name).items() if k != "pretrained"]
        return [*MODELS[name], *extra]

    def plain(self, name: str):
        if name not in self._plain:
            self._plain[name] = load_model(name, device=self.device, **self.model_options(name))
        return self._plain[name]

    def fast(self, name: str, **runtime):
        """``name`` as the harness runs it (the config's ``runtime``, with ``runtime``)."""
        return set_runtime(self.plain(name), **{**bench.RUNTIME, **runtime})

    def photos(self, name: str):
        """The first ``images`` embedded photos at ``name``'s input size, their ids and
        the model's predictions."""
        if name not in self._photos:
            model = self.plain(name)
            dataset = build_dataset("embedded", model.data_config, limit=self.settings.images)
            x = torch.stack([s.image for s in dataset]).to(self.device)
            with torch.no_grad():
                target = model(x).argmax(-1)
            self._photos[name] = x, target, [s.image_id for s in dataset]
        return self._photos[name]

    def batch(self, name: str, kind: str) -> int:
        """``internal_batch_size`` or ``eval_batch_size`` for ``name``."""
        chosen = self.batches.get(name) or self.batches.get(DEFAULT_MODEL)
        if chosen:
            return chosen[kind]
        return {"internal_batch_size": 64, "eval_batch_size": 128}[kind] if on_cuda() else 4

    def batch_overrides(self, name: str) -> list[str]:
        return [f"attribution.internal_batch_size={self.batch(name, 'internal_batch_size')}",
                f"eval.batch_size={self.batch(name, 'eval_batch_size')}"]


def chosen_batch(rows: list[dict], key: str) -> int:
    """The smallest batch within :data:`BATCH_TOLERANCE` of the fastest per image."""
    timed = [r for r in rows if key in r]
    best = min(r[key] for r in timed)
    return min(r["batch"] for r in timed if r[key] <= best * (1 + BATCH_TOLERANCE))


# ----------------------------------------------------------------------------- sections


def environment(d: Device) -> dict:
    out = {"device": str(d.device), "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(),
           "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name() if on_cuda() else None,
           "gpu_memory_gb": (torch.cuda.get_device_properties(0).total_memory / 2**30
                             if on_cuda() else None)}
    return out


def batch_sweep(d: Device, name: str) -> dict:
    rows = model_runtime.sweep(d.fast(name), list(d.settings.batches), d.settings.repeats,
                               d.settings.sweep_images)
    chosen = {"internal_batch_size": chosen_batch(rows, "fwd_bwd_ms"),
              "eval_batch_size": chosen_batch(rows, "fwd_ms")}
    d.batches[name] = chosen
    return {"rows": rows, **chosen}


def paths_vs_saliency_section(d: Device) -> dict:
    x, target, _ = d.photos(DEFAULT_MODEL)
    n = d.settings.pair_images
    return paths_vs_saliency.compare(d.fast(DEFAULT_MODEL), x[:n], target[:n], d.settings.steps,
                                     d.batch(DEFAULT_MODEL, "internal_batch_size"))


def ig_vs_captum(d: Device) -> dict:
    x, target, _ = d.photos(DEFAULT_MODEL)
    chunk = d.batch(DEFAULT_MODEL, "internal_batch_size")
    chunks = sorted({max(1, chunk // 2), chunk, chunk * 2}) if not d.dry else [chunk]
    return bench.bench_ig(d.plain(DEFAULT_MODEL), d.fast(DEFAULT_MODEL), x, target,
                          d.settings.steps, chunks, d.settings.repeats)


def mufidelity_vs_quantus(d: Device) -> dict:
    x, target, ids = d.photos(DEFAULT_MODEL)
    fast = d.fast(DEFAULT_MODEL)
    attributions = explain(fast, x, target, "ig_black", steps=d.settings.steps,
                           internal_batch_size=d.batch(DEFAULT_MODEL, "internal_batch_size")
                           ).attributions
    return bench.bench_mufidelity(d.plain(DEFAULT_MODEL), fast, x, target, attributions, ids,
                                  d.settings.subsets, d.batch(DEFAULT_MODEL, "eval_batch_size"),
                                  d.settings.repeats)


def uni_vs_floor(d: Device) -> dict:
    x, target, _ = d.photos(DEFAULT_MODEL)
    options = {k: p.default for k, p in inspect.signature(uni_baseline).parameters.items()
               if p.default is not inspect.Parameter.empty and k not in ("image_ids", "seed")}
    options["pgd_steps"] = d.settings.pgd_steps
    return bench.bench_uni(d.fast(DEFAULT_MODEL), x, target, options, d.settings.steps,
                           d.batch(DEFAULT_MODEL, "internal_batch_size"), d.settings.repeats)


def images_per_hour(d: Device, name: str) -> dict:
    """``experiment=faithfulness`` at the paper profile: seconds per image per stage from
    :func:`uni.engine.plan.plan` on ``plan_images`` images (one batch), after a warm-up plan
    on one image (kernel selection, allocator growth)."""
    overrides = [*d.model_overrides(name), "experiment=faithfulness", *d.batch_overrides(name),
                 f"data.batch_size={d.settings.plan_images}"]
    if d.dry:
        overrides += [o for o in d.settings.experiment_overrides if not o.startswith("+model")]
    cfg = experiments.composed(overrides, "paper", None)
    with tempfile.TemporaryDirectory() as scratch:
        if not d.dry:
            plan(cfg, scratch, calibration_images=1)  # warm-up
        bench.synchronize()
        estimate = plan(cfg, scratch, calibration_images=d.settings.plan_images)
    return {"images_per_hour": 3600 / estimate.seconds_per_image,
            "seconds_per_image": estimate.seconds_per_image,
            "stages_per_image": estimate.stages, "forward_rows_per_image": estimate.forward_rows,
            "gradient_rows_per_image": estimate.gradient_rows,
            "calibration_images": estimate.calibration_images, "overrides": overrides}


def relative_l1(a: torch.Tensor, reference: torch.Tensor) -> float:
    return float((a - reference).abs().sum() / reference.abs().sum())


def ig_per_image(d: Device, model, x, target, name: str):
    """IG (black baseline) seconds per image (best of ``repeats`` after a warm-up) and
    the attributions."""
    seconds, result = bench.timed(lambda: explain(
        model, x, target, "ig_black", steps=d.settings.steps,
        internal_batch_size=d.batch(name, "internal_batch_size")), d.settings.repeats)
    return seconds / x.shape[0], result.attributions.float()


def precision(d: Device, name: str) -> dict:
    x, target, _ = d.photos(name)
    out, reference = {}, None
    for p in PRECISIONS:  # fp32 first: the reference
        seconds, attributions = ig_per_image(d, d.fast(name, precision=p), x, target, name)
        reference = attributions if reference is None else reference
        out[p] = {"ig_s_per_image": seconds, "rel_l1_to_fp32": relative_l1(attributions,
                                                                           reference)}
    for p in PRECISIONS[1:]:
        out[p]["speedup_over_fp32"] = out["fp32"]["ig_s_per_image"] / out[p]["ig_s_per_image"]
    return out


@contextlib.contextmanager
def compile_backend(backend: str | None):
    """``torch.compile`` with ``backend`` while inside (None: unchanged)."""
    original = torch.compile
    if backend is not None:
        torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


def compile_section(d: Device) -> dict:
    name = d.settings.compile_model
    x, target, _ = d.photos(name)
    eager_s, reference = ig_per_image(d, d.fast(name), x, target, name)
    with compile_backend(d.settings.compile_backend):
        compiled = d.fast(name, compile=True)
    bench.synchronize()
    start = time.perf_counter()
    explain(compiled, x, target, "ig_black", steps=d.settings.steps,
            internal_batch_size=d.batch(name, "internal_batch_size"))
    bench.synchronize()
    first_s = time.perf_counter() - start
    compiled_s, attributions = ig_per_image(d, compiled, x, target, name)
    return {"model": name, "backend": d.settings.compile_backend or "inductor",
            "off": {"ig_s_per_image": eager_s},
            "on": {"ig_s_per_image": compiled_s, "first_call_s": first_s},
            "speedup": eager_s / compiled_s, "rel_l1": relative_l1(attributions, reference)}


def experiment_section(d: Device, name: str) -> dict:
    overrides = [*experiments.experiments()[name], *d.batch_overrides(DEFAULT_MODEL),
                 *d.settings.experiment_overrides]
    profile = "quick" if d.dry else "dev"
    return experiments.bench_experiment(experiments.composed(overrides, profile, None),
                                        d.settings.experiment_images)


# name -> (function, the part names it runs per part: models, experiments, or None)
def sections(d: Device) -> dict:
    per_model = list(MODELS)
    return {
        "environment": (environment, None),
        "batch_sweep": (batch_sweep, per_model),
        "paths_vs_saliency": (paths_vs_saliency_section, None),
        "ig_vs_captum": (ig_vs_captum, None),
        "mufidelity_vs_quantus": (mufidelity_vs_quantus, None),
        "uni_vs_floor": (uni_vs_floor, None),
        "images_per_hour": (images_per_hour, per_model),
        "precision": (precision, per_model),
        "experiments": (experiment_section, list(experiments.experiments())),
        "compile": (compile_section, None),
    }


def measured(fn, seconds: float, *args) -> dict:
    """``fn(*args)`` in a time box, with its status, error, seconds and memory peak;
    ``skipped`` when the run's budget is spent."""
    if seconds < 1:
        return {"status": "skipped", "error": "the run's budget was spent", "seconds": 0.0,
                "peak_memory_mb": None}
    # after a CUDA fault (an illegal access) these fail too: the section's error says why
    with contextlib.suppress(RuntimeError):
        if on_cuda():
            torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = {"status": "ok", "error": None, "peak_memory_mb": None}
    try:
        with time_box(seconds):
            out.update(fn(*args))
    except Exception as err:  # one section's failure must not stop the others
        out["status"] = "timeout" if isinstance(err, OutOfTime) else "error"
        out["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if not isinstance(err, OutOfTime):
            out["where"] = traceback.format_exc(limit=-3).strip().splitlines()[-3:]
    with contextlib.suppress(RuntimeError):
        bench.synchronize()
    out["seconds"] = time.perf_counter() - start
    with contextlib.suppress(RuntimeError):
        out["peak_memory_mb"] = peak_memory_mb()
        if on_cuda():
            torch.cuda.empty_cache()
    return out


def summary(results: dict) -> dict:
    """The headline numbers (None where their section did not finish)."""

    def get(*path):
        node = results
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    out = {
        "ig_vs_captum_speedup": get("ig_vs_captum", "speedup"),
        "mufidelity_vs_quantus_speedup": get("mufidelity_vs_quantus", "speedup"),
        "blur_ig_vs_pair": get("paths_vs_saliency", "methods", "blur_ig", "speed_ratio"),
        "guided_ig_vs_pair": get("paths_vs_saliency", "methods", "guided_ig", "speed_ratio"),
        "uni_over_floor": get("uni_vs_floor", "cost_over_floor"),
        "compile_speedup": get("compile", "speedup"),
        "recommended_batch_sizes": get("batch_sweep", "recommended"),
    }
    for name in MODELS:
        out[f"images_per_hour_{name}"] = get("images_per_hour", name, "images_per_hour")
        for p in PRECISIONS[1:]:
            out[f"{p}_speedup_{name}"] = get("precision", name, p, "speedup_over_fp32")
            out[f"{p}_rel_l1_{name}"] = get("precision", name, p, "rel_l1_to_fp32")
    for name in experiments.experiments():
        out[f"{name}_over_floor"] = get("experiments", name, "over_floor")
    return out


def failures(results: dict) -> list[str]:
    """Sections (or parts) whose status is not ok."""
    bad = []
    for name, section in results.items():
        if not isinstance(section, dict):
            continue
        if section.get("status") not in (None, "ok"):
            bad.append(f"{name}: {section.get('error')}")
        for part, value in section.items():
            if isinstance(value, dict) and value.get("status") not in (None, "ok"):
                bad.append(f"{name}/{part}: {value.get('error')}")
    return bad


def as_json(value):
    """Numbers as numbers (NumPy, tensors), anything else as its text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=as_json) + "\n")
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="tiny settings on this CPU")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all sections (default: the settings')")
    args = parser.parse_args(argv)
    settings = DRY if args.dry else FULL
    warnings.filterwarnings("ignore", module="captum")  # its notes on hooks, once per call
    budget = args.budget or settings.budget_s
    torch.manual_seed(0)
    d = Device(settings, args.dry)
    start = time.perf_counter()
    results: dict = {"dry": args.dry, "settings": asdict(settings), "argv": sys.argv[1:]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, (fn, parts) in sections(d).items():
        box = settings.boxes[name]
        if parts is None:
            left = budget - (time.perf_counter() - start)
            results[name] = measured(fn, min(box, left), d)
        else:
            results[name] = {}
            for part in parts:
                left = budget - (time.perf_counter() - start)
                results[name][part] = measured(fn, min(box, left), d, part)
        if name == "batch_sweep":
            results[name]["recommended"] = d.batches.get(DEFAULT_MODEL)
        print(f"{name:24s} {time.perf_counter() - start:7.1f} s", flush=True)
        results["wall_s"] = time.perf_counter() - start
        results["summary"] = summary(results)
        write(args.out, results)
    print(json.dumps(results["summary"], default=as_json))
    bad = failures(results)
    for line in bad:
        print(f"not ok: {line}", file=sys.stderr)
    print(f"wrote {args.out} in {results['wall_s']:.0f} s")
    return 1 if args.dry and bad else 0


if __name__ == "__main__":
    sys.exit(main())

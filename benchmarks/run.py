"""Speed and memory, measured side by side in one run (`make bench`, `make bench-quick`).

Every figure is a ratio against a peer measured in the same process on the same model,
images and settings, so machine noise affects both sides alike:

- IG vs Captum ``IntegratedGradients`` (black baseline, same steps; each side's
  ``internal_batch_size`` tuned from a small grid): throughput ratio and max difference,
  ours on the plain model and as the harness runs it (``runtime`` config);
- MuFidelity vs Quantus ``FaithfulnessCorrelation`` at the same number of perturbations;
- for both, the cost over the model alone on the same rows (what bounds the ratio);
- deletion / insertion vs a plain per-step loop;
- UNI vs its floor: ``pgd_steps + steps + 2`` forward+backward passes on the same batch,
  with the split between unlearning, PGD and integration; its baseline search against the
  previous one (sign steps, last iterate) at the same ``pgd_steps``;
- peak memory per image, and time against batch size and against ``steps``.

Writes ``benchmarks/results/<device>.json`` and prints a table; the last line is one JSON
object with ``ig_vs_captum_speedup``, ``mufidelity_vs_quantus_speedup``,
``uni_cost_over_floor``, ``uni_search_over_previous`` and each experiment's cost over its
floor (``faithfulness_over_floor``, ``robustness_over_floor``, ``stability_over_floor``,
``imagenet_c_over_floor``) with the top-k attack's speed-up over the previous one
(:mod:`experiments`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import experiments  # benchmarks/experiments.py
import torch
import yaml

from uni.data import build_dataset
from uni.methods import explain
from uni.methods.unlearning import (
    kl_divergence,
    match_activations,
    project,
    uni_baseline,
    unlearned_logits,
)
from uni.metrics import deletion, insertion, mufidelity
from uni.models import class_score, load_model, set_runtime

RESULTS = Path(__file__).resolve().parent / "results"
# the model as `uni.run` runs it by default (conf/config.yaml, runtime)
RUNTIME = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "config.yaml")
                         .read_text())["runtime"]


def synchronize() -> None:
    """Wait for queued CUDA work (kernels run asynchronously), so a clock read after it
    counts the work; nothing on a CPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 1):
    """Best wall time of ``repeats`` calls after one untimed warm-up call (kernel
    selection, allocator growth), so neither side of a comparison pays for it."""
    best, out = float("inf"), fn()
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        out = fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


PEAK_SCRIPT = """
import json, sys, torch
from pathlib import Path
from uni.methods import explain
from uni.models import load_model, set_runtime
def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return float(line.split()[1]) / 1024
batch, steps, chunk = (int(a) for a in sys.argv[1:4])
runtime = json.loads(sys.argv[4])
model = set_runtime(load_model("efficientnet_lite0"), **runtime)
x = torch.rand(batch, *model.input_size, generator=torch.Generator().manual_seed(0))
before = status("VmRSS")
explain(model, x, None, "ig_black", steps=steps, internal_batch_size=chunk)
print(status("VmHWM") - before)
"""


def peak_rss_mb(batch: int, steps: int, chunk: int) -> float:
    """Peak resident memory growth (MB) of one IG call on ``batch`` images, measured in a
    fresh process (in this one, freed memory is reused and the peak does not move)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, *map(str, (batch, steps, chunk)),
         json.dumps(RUNTIME)],
        capture_output=True, text=True, check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def captum_ig(model, x, target, steps, internal_batch_size):
    from captum.attr import IntegratedGradients

    class Prob(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, inputs):
            return self.net(inputs).softmax(-1)

    ig = IntegratedGradients(Prob(model))
    return ig.attribute(x, torch.zeros_like(x), target=target, n_steps=steps,
                        method="riemann_right", internal_batch_size=internal_batch_size)


def model_rows(model, x, target, rows: int, chunk: int, backward: bool) -> None:
    """The model alone on ``rows`` image rows, ``chunk`` per call (forward, or forward and
    input-gradient backward): the floor a method's model calls cannot go below."""
    reps = -(-chunk // x.shape[0])
    xs, ts = x.repeat(reps, 1, 1, 1)[:chunk], target.repeat(reps)[:chunk]
    for start in range(0, rows, chunk):
        xr, tr = xs[: rows - start], ts[: rows - start]
        if backward:
            xr = xr.detach().requires_grad_(True)
            torch.autograd.grad(class_score(model(xr), tr).sum(), xr)
        else:
            with torch.no_grad():
                model(xr)


def bench_ig(plain, fast, x, target, steps, chunks, repeats):
    """Captum on the plain timm model; ours on the same plain model and on the model as the
    harness runs it (``runtime`` config: BatchNorm folded, channels_last)."""

    def best(fn):
        runs = {c: timed(lambda c=c: fn(c), repeats) for c in chunks}
        chunk = min(runs, key=lambda c: runs[c][0])
        return runs[chunk][0], chunk, runs[chunk][1]

    captum_s, captum_chunk, reference = best(
        lambda c: captum_ig(plain, x, target, steps, c).detach())
    out = {"captum_s": captum_s, "captum_chunk": captum_chunk}
    for label, model in (("plain", plain), ("runtime", fast)):
        seconds, chunk, ours = best(lambda c, model=model: explain(
            model, x, target, "ig_black", steps=steps, internal_batch_size=c).attributions)
        out[label] = {
            "ours_s": seconds, "ours_chunk": chunk, "speedup": captum_s / seconds,
            "max_abs_diff": float((ours - reference).abs().max()),
            "rel_l1": float((ours - reference).abs().sum() / reference.abs().sum()),
        }
    out["speedup"] = out["runtime"]["speedup"]
    # what bounds it: the same model rows alone, at our best chunk
    chunk = out["runtime"]["ours_chunk"]
    floor_s, _ = timed(lambda: model_rows(fast, x, target, steps * x.shape[0], chunk, True),
                       repeats)
    out["runtime"]["model_rows_s"] = floor_s
    out["runtime"]["cost_over_model_rows"] = out["runtime"]["ours_s"] / floor_s
    return out


def bench_mufidelity(plain, fast, x, target, attributions, ids, subsets, batch_size, repeats):
    """Ours as the harness runs it vs Quantus on the plain model."""
    import quantus

    ours_s, _ = timed(lambda: mufidelity(fast, x, attributions, target, subsets=subsets,
                                         image_ids=ids, batch_size=batch_size), repeats)
    # Quantus's own estimator at the same number of perturbations per image
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=subsets, return_aggregate=False, disable_warnings=True,
        display_progressbar=False,
    )
    x_np, a_np = x.cpu().numpy(), attributions.sum(1, keepdim=True).cpu().numpy()

    def run_quantus():
        return metric(model=plain, x_batch=x_np, y_batch=target.cpu().numpy(), a_batch=a_np,
                      device=str(x.device), softmax=True, channel_first=True,
                      batch_size=batch_size)

    theirs_s, _ = timed(run_quantus, repeats)
    rows = (subsets + 1) * x.shape[0]  # every perturbation, and the clean image
    floor_s, _ = timed(lambda: model_rows(fast, x, target, rows, batch_size, False), repeats)
    return {"ours_s": ours_s, "quantus_s": theirs_s, "speedup": theirs_s / ours_s,
            "perturbations_per_image": subsets, "model_rows_s": floor_s,
            "cost_over_model_rows": ours_s / floor_s}


def bench_deletion_insertion(model, x, target, attributions, steps, batch_size, repeats):
    """Batched curve points vs one forward pass per curve point and image (a plain loop)."""

    def scored(rows_per_pass):
        return [
            metric(model, x, attributions, target, steps=steps, batch_size=rows_per_pass)
            for metric in (deletion, insertion)
        ]

    ours_s, ours = timed(lambda: scored(batch_size), repeats)
    loop_s, loop = timed(lambda: scored(1), repeats)
    difference = max(float((a - b).abs().max()) for a, b in zip(ours, loop))
    return {"ours_s": ours_s, "per_step_loop_s": loop_s, "speedup": loop_s / ours_s,
            "max_abs_diff": difference}


def previous_search(model, x, log_q, eps, pgd_steps, start=None):
    """The search UNI used before its convergence fixes, for comparisons: sign steps of
    2.5 eps / T from ``start`` (default ``x``), no bookkeeping, the last iterate returned."""
    x_adv = x.clone() if start is None else start.clone()
    for _ in range(pgd_steps):
        x_adv.requires_grad_(True)
        kl = kl_divergence(log_q, model(x_adv).log_softmax(-1), "forward")
        (g,) = torch.autograd.grad(kl.sum(), x_adv)
        x_adv = project(x_adv.detach() - 2.5 * eps / pgd_steps * g.sign(), x, eps, "linf")
    return x_adv.detach()


def bench_uni(model, x, target, options, steps, chunk, repeats):
    eps, pgd_steps = options["eps"], options["pgd_steps"]
    unlearn = {k: options[k] for k in ("eta", "unlearn_steps", "unlearn_step", "unlearn_until")}
    search = {k: options[k] for k in ("norm", "pgd_update", "pgd_schedule", "pgd_step_size",
                                      "kl_tolerance")}
    n = x.shape[0]  # each floor pass: the whole batch, input gradients only
    floor_s, _ = timed(lambda: model_rows(model, x, target, (pgd_steps + steps + 2) * n, n,
                                          True), repeats)
    unlearn_s, (logits, _) = timed(lambda: unlearned_logits(model, x, target, **unlearn),
                                   repeats)
    log_q = logits.log_softmax(-1)
    pgd_s, _ = timed(lambda: match_activations(model, x, log_q, eps, pgd_steps=pgd_steps,
                                               **search), repeats)
    previous_s, _ = timed(lambda: previous_search(model, x, log_q, eps, pgd_steps), repeats)
    total_s, _ = timed(lambda: explain(model, x, target, "uni", steps=steps,
                                       internal_batch_size=chunk, **options), repeats)
    return {"uni_s": total_s, "floor_s": floor_s, "cost_over_floor": total_s / floor_s,
            "unlearn_s": unlearn_s, "pgd_s": pgd_s,
            "integrate_s": total_s - unlearn_s - pgd_s, "images": x.shape[0],
            "previous_search_s": previous_s, "search_over_previous": pgd_s / previous_s}


def bench_scaling(model, x, target, batch_sizes, step_counts, chunk, repeats):
    by_batch = {}
    for b in batch_sizes:
        xb = x.repeat((b + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:b]
        tb = target.repeat((b + x.shape[0] - 1) // x.shape[0])[:b]
        seconds, _ = timed(lambda xb=xb, tb=tb: explain(model, xb, tb, "ig_black", steps=8,
                                                        internal_batch_size=chunk), repeats)
        by_batch[b] = {"s_per_image": seconds / b,
                       "peak_mb_per_image": peak_rss_mb(b, 8, chunk) / b}
    by_steps = {s: timed(lambda s=s: explain(model, x, target, "ig_black", steps=s,
                                             internal_batch_size=chunk), repeats)[0]
                for s in step_counts}
    return {"ig_by_batch": by_batch, "ig_s_by_steps": by_steps}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="reduced run, about 10 minutes on a 2-core CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    plain = load_model("efficientnet_lite0", device=device)
    model = set_runtime(plain, **RUNTIME)
    images = 2 if args.quick else 4
    dataset = build_dataset("embedded", model.data_config, limit=images)
    x = torch.stack([s.image for s in dataset]).to(device)
    ids = [s.image_id for s in dataset]
    with torch.no_grad():
        target = model(x).argmax(-1)
    steps = 16 if args.quick else 32
    repeats = 1 if args.quick else 2
    chunks = [16] if args.quick else [8, 16, 32]
    uni_defaults = {k: p.default for k, p in inspect.signature(uni_baseline).parameters.items()
                    if p.default is not inspect.Parameter.empty
                    and k not in ("image_ids", "seed")}

    results = {"device": str(device), "cpu": platform.processor() or platform.machine(),
               "torch_threads": torch.get_num_threads(), "images": images, "steps": steps,
               "quick": args.quick}
    results["runtime"] = RUNTIME
    results["ig_vs_captum"] = bench_ig(plain, model, x, target, steps, chunks, repeats)
    attributions = explain(model, x, target, "ig_black", steps=steps).attributions
    results["mufidelity_vs_quantus"] = bench_mufidelity(
        plain, model, x, target, attributions, ids, 32 if args.quick else 128, 16, repeats)
    results["deletion_insertion_vs_loop"] = bench_deletion_insertion(
        model, x, target, attributions, 10 if args.quick else 50, 16, repeats)
    results["uni_vs_floor"] = bench_uni(model, x, target, uni_defaults, steps, 16, repeats)
    if not args.quick:
        results["scaling"] = bench_scaling(model, x, target, [1, 2, 4, 8], [8, 16, 32, 64], 16,
                                           repeats)
    # each experiment end to end against its floor (benchmarks/experiments.py)
    results["experiments"] = experiments.run(args.quick)

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{device.type}{'-quick' if args.quick else ''}.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2, default=float) + "\n")
    for key, value in results.items():
        print(f"{key:28s} {json.dumps(value, default=float)}")
    summary = {
        "ig_vs_captum_speedup": results["ig_vs_captum"]["speedup"],
        "mufidelity_vs_quantus_speedup": results.get("mufidelity_vs_quantus", {}).get("speedup"),
        "uni_cost_over_floor": results["uni_vs_floor"]["cost_over_floor"],
        "uni_search_over_previous": results["uni_vs_floor"]["search_over_previous"],
        **experiments.summary(results["experiments"]),
    }
    print(json.dumps(summary))
    return results


if __name__ == "__main__":
    main()

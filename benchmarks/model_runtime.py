"""Cost of one forward (+ input-gradient backward) pass of EfficientNet-Lite0 under each
``runtime`` option (:func:`uni.set_runtime`), in ms per image at batch 16, and how far the
faster models' input gradients are from the plain model's (float32, relative L1).
``--batch-sweep``: instead, the per-image cost of the default runtime (folded BatchNorm,
channels-last) at each batch size, which is what ``eval.batch_size`` (forward) and
``attribution.internal_batch_size`` (forward+backward) choose.

    .venv/bin/python benchmarks/model_runtime.py [--compile] [--threads N]
    .venv/bin/python benchmarks/model_runtime.py --batch-sweep 1 2 4 8 16 32 [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from run import synchronize  # benchmarks/run.py

from uni.errors import ConfigError
from uni.models import class_score, load_model, set_runtime

VARIANTS = {
    "plain": {},
    "channels_last": {"channels_last": True},
    "fold_batchnorm": {"fold_batchnorm": True},
    "fold_batchnorm + channels_last": {"fold_batchnorm": True, "channels_last": True},
}


def per_image_ms(fn, batch: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / batch


def input_gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(class_score(model(x), target).sum(), x)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batch-sweep", type=int, nargs="+", metavar="BATCH")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        plain = load_model(args.model)
    except ConfigError as err:
        parser.error(str(err))
    if args.batch_sweep:
        return batch_sweep(plain, args.batch_sweep)
    x = torch.rand(args.batch, *plain.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = plain(x).argmax(-1)
    reference = input_gradient(plain, x, target)
    variants = dict(VARIANTS)
    if args.compile:
        variants["compile"] = {"compile": True}
    print(f"{'runtime':32s} {'fwd+bwd ms/img':>15s} {'fwd ms/img':>11s} {'grad rel L1':>12s}")
    for name, options in variants.items():
        model = set_runtime(plain, **options)
        gradient = input_gradient(model, x, target)
        difference = float((gradient - reference).abs().sum() / reference.abs().sum())
        both = per_image_ms(lambda model=model: input_gradient(model, x, target), args.batch)
        with torch.inference_mode():
            forward = per_image_ms(lambda model=model: model(x), args.batch)
        print(f"{name:32s} {both:15.1f} {forward:11.1f} {difference:12.1e}", flush=True)


def sweep(model, batches: list[int], repeats: int = 5, images: int = 32) -> list[dict]:
    """Per-image ms of ``model``'s forward+backward (input gradient) and forward at each
    batch size (best of ``repeats`` calls of at least ``images`` images each, so small
    batches are not timed on one call), with the CUDA memory peak (MB; None on a CPU); a batch the
    device has no memory for ends the sweep (its row says so)."""
    cuda = next(model.parameters()).device.type == "cuda"
    rows = []
    for batch in batches:
        x = torch.rand(batch, *model.input_size, generator=torch.Generator().manual_seed(0))
        x = x.to(next(model.parameters()).device)
        target = torch.zeros(batch, dtype=torch.long, device=x.device)
        calls = max(1, images // batch)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            both = per_image_ms(lambda x=x, t=target, n=calls: [input_gradient(model, x, t)
                                                                for _ in range(n)],
                                batch * calls, repeats)
            with torch.inference_mode():
                forward = per_image_ms(lambda x=x, n=calls: [model(x) for _ in range(n)],
                                       batch * calls, repeats)
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch": batch, "out_of_memory": True})
            break
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        rows.append({"batch": batch, "fwd_bwd_ms": both, "fwd_ms": forward, "peak_mb": peak})
    return rows


def batch_sweep(plain, batches: list[int], repeats: int = 5) -> None:
    """:func:`sweep` of the default runtime (folded BatchNorm, channels-last), printed."""
    model = set_runtime(plain, fold_batchnorm=True, channels_last=True)
    print(f"{torch.get_num_threads()} thread(s), {plain.name}")
    print(f"{'batch':>6s} {'fwd+bwd ms/img':>15s} {'fwd ms/img':>11s}")
    for row in sweep(model, batches, repeats):
        if row.get("out_of_memory"):
            print(f"{row['batch']:6d} out of memory")
            continue
        print(f"{row['batch']:6d} {row['fwd_bwd_ms']:15.1f} {row['fwd_ms']:11.1f}", flush=True)


if __name__ == "__main__":
    main()

"""Blur IG and Guided IG: ours (all images x steps batched through the path core) against
PAIR ``saliency`` 0.2.x (the reference implementation, one image at a time, NumPy), on
EfficientNet-Lite0 at equal settings, in one run. Prints JSON: seconds for each side,
the speed ratio (PAIR seconds / ours) and the relative L1 difference of the attributions
per image. Guided IG can differ a lot on some images: it moves the features with the
smallest |gradient| first, and which those are changes with the float32 rounding of the
gradients, which differs between a batch of several images and one (PAIR given our
batched gradients agrees to 2e-8; see :mod:`uni.methods.guided_ig`).

Both sides call the same PyTorch model for their gradients (PAIR through its
``call_model_function``, with ``output=prob`` as ours); PAIR's Blur IG runs with its
default ``batch_size=1`` (one model call per step) unless ``--pair-batch``; its Guided IG
makes one call per step by construction. Not run by the tests.

``batching_ceiling``: the model alone making the same input-gradient passes (images x
steps rows) one row per call and ``internal_batch_size`` rows per call, in the same run;
per method, ``ceiling_ratio`` = PAIR seconds / the faster of the two: the speed ratio an
implementation with no cost beyond these model passes would reach on this device.

    .venv/bin/python benchmarks/paths_vs_saliency.py [--images 4] [--steps 16] [--runtime]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from run import model_rows, synchronize  # benchmarks/run.py: the model alone on N rows

from uni.data import build_dataset
from uni.interop import saliency_call_model
from uni.methods import explain
from uni.models import load_model, set_runtime


class _NumpyQuantileCompat:
    """saliency 0.2.1's Guided IG calls ``np.quantile(..., interpolation=...)``, a keyword
    NumPy 2.4 removed (``method`` since 1.22); everything else is NumPy itself."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation=None, **kwargs):
        return np.quantile(a, q, method=interpolation or "linear", **kwargs)


def timed(fn):
    synchronize()
    start = time.perf_counter()
    value = fn()
    synchronize()
    return value, time.perf_counter() - start


def compare(model, x, target, steps: int, internal_batch_size: int, pair_batch: int = 1,
            methods=("blur_ig", "guided_ig")) -> dict:
    """PAIR against ours for each of ``methods`` on the batch ``x`` (PAIR one image at a
    time), with the batching ceiling: the report's ``batching_ceiling`` and ``methods``."""
    import saliency.core as saliency
    from saliency.core import guided_ig as pair_guided_ig

    pair_guided_ig.np = _NumpyQuantileCompat()
    explain(model, x[:1], target[:1], "ig_black", steps=2)  # warm-up

    def pair(method: str, i: int) -> np.ndarray:
        image = x[i].permute(1, 2, 0).cpu().numpy()
        call = saliency_call_model(model, int(target[i]))
        if method == "blur_ig":
            return saliency.BlurIG().GetMask(image, call, steps=steps, batch_size=pair_batch)
        return saliency.GuidedIG().GetMask(image, call, x_steps=steps)

    rows = len(x) * steps
    _, one = timed(lambda: model_rows(model, x, target, rows, 1, backward=True))
    _, chunked = timed(lambda: model_rows(model, x, target, rows, internal_batch_size,
                                          backward=True))
    report = {"batching_ceiling": {"rows": rows, "one_per_call_s": one, "chunked_s": chunked,
                                   "ratio": one / chunked},
              "methods": {}}
    for method in methods:
        theirs, pair_s = timed(lambda method=method: [pair(method, i) for i in range(len(x))])
        result, ours_s = timed(lambda method=method: explain(
            model, x, target, method, steps=steps, internal_batch_size=internal_batch_size))
        ours = result.attributions.permute(0, 2, 3, 1).cpu().numpy()
        differences = [float(np.abs(ours[i] - theirs[i]).sum() / np.abs(theirs[i]).sum())
                       for i in range(len(x))]
        report["methods"][method] = {
            "pair_s": pair_s, "ours_s": ours_s, "speed_ratio": pair_s / ours_s,
            "ceiling_ratio": pair_s / min(one, chunked),
            "pair_s_per_image": pair_s / len(x), "ours_s_per_image": ours_s / len(x),
            "max_rel_l1": max(differences), "rel_l1": differences,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="embedded photos (at most 8)")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--internal-batch-size", type=int, default=16,
                        help="our rows per model call")
    parser.add_argument("--pair-batch", type=int, default=1,
                        help="PAIR Blur IG's batch_size (its default 1)")
    parser.add_argument("--runtime", action="store_true",
                        help="fold BatchNorm + channels_last (the same model for both sides)")
    parser.add_argument("--methods", default="blur_ig,guided_ig")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    model = load_model("efficientnet_lite0")
    if args.runtime:
        model = set_runtime(model, fold_batchnorm=True, channels_last=True)
    dataset = build_dataset("embedded", model.data_config, limit=args.images)
    x = torch.stack([dataset[i].image for i in range(len(dataset))])
    with torch.no_grad():
        target = model(x).argmax(-1)
    report = {
        "device": "cpu", "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
        "model": "efficientnet_lite0", "runtime": bool(args.runtime), "images": len(x),
        "steps": args.steps, "internal_batch_size": args.internal_batch_size,
        "pair_blur_ig_batch_size": args.pair_batch,
        **compare(model, x, target, args.steps, args.internal_batch_size, args.pair_batch,
                  args.methods.split(",")),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()

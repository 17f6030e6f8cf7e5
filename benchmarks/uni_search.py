"""How well UNI's two inner problems are solved, on the development split's tuning images.

- ``--part unlearn``: ``p_c`` under the unlearned parameters ``q`` and the entropy of ``q``
  for each unlearning variant (fixed ``eta g``, normalised ``eta g / ||g||``, repeated until
  ``p_c < 0.1``);
- ``--part search``: for each baseline search (the previous sign-PGD returning its last
  iterate; sign or Adam updates, constant or cosine steps, best iterate by KL): final KL,
  ``p_c(x')``, the fraction of coordinates on the ball's faces, and the restart noise floor
  (Spearman and top-1000 intersection between UNI maps from the start ``x`` and from a
  random start in the ball, IG with 16 steps).

Images: the 8 most confident of the 100 tuning images (``data.subset=tune``, never the
evaluation images) and 8 spread over the rest of the confidence range. Run from the repository root:
``.venv/bin/python benchmarks/uni_search.py --part search --eps 4 --norm linf --steps 20``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from run import previous_search  # the sibling script (run from the repository root)

from uni.data import build_dataset
from uni.methods.path import integrated_gradients
from uni.methods.unlearning import (
    _random_start,
    kl_divergence,
    match_activations,
    unlearned_logits,
)
from uni.metrics.robustness import compare_maps
from uni.models import load_model, set_runtime

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-dev"
UNLEARNING = {
    "fixed eta=0.01 (previous)": {"eta": 0.01},
    "fixed eta=0.1": {"eta": 0.1},
    "normalised eta=0.03": {"eta": 0.03, "unlearn_step": "normalised"},
    "normalised eta=0.1": {"eta": 0.1, "unlearn_step": "normalised"},
    "normalised eta=0.3": {"eta": 0.3, "unlearn_step": "normalised"},
    "fixed eta=0.01 until p_c<0.1 (<=10 steps)": {"eta": 0.01, "unlearn_until": 0.1,
                                                   "unlearn_steps": 10},
}
SEARCHES = {
    "previous (sign, 2.5eps/T, last)": None,
    "sign constant, best": {"pgd_update": "sign", "pgd_schedule": "constant"},
    "sign cosine eps/2, best": {"pgd_update": "sign", "pgd_schedule": "cosine"},
    "adam cosine eps/2, best": {"pgd_update": "adam", "pgd_schedule": "cosine"},
    "adam constant eps/4, best": {"pgd_update": "adam", "pgd_schedule": "constant"},
}


def images(model, count: int = 100):
    dataset = build_dataset("folder", model.data_config, root=DEV, subset="tune", limit=count)
    x = torch.stack([s.image for s in dataset])
    with torch.no_grad():
        p = torch.cat([model(x[i : i + 25]).softmax(-1) for i in range(0, len(x), 25)])
    confidence, target = p.max(-1)
    order = confidence.argsort(descending=True)
    chosen = torch.cat([order[:8], order[torch.arange(20, count, (count - 20) // 8)][:8]])
    return x[chosen], target[chosen], [dataset[int(i)].image_id for i in chosen]


def unlearning_part(model, x, target):
    for name, options in UNLEARNING.items():
        logits, taken = unlearned_logits(model, x, target, **options)
        q = logits.softmax(-1)
        p_c = q[torch.arange(len(target)), target]
        entropy = -(q * q.clamp_min(1e-30).log()).sum(-1)
        confident = p_c[:8]  # images() puts the 8 most confident first
        print(f"{name:44s} p_c(q) 8 most confident {confident.min():.3f} - "
              f"{confident.max():.3f}, all {len(p_c)}: max {p_c.max():.3f} mean {p_c.mean():.3f}; "
              f"entropy {entropy.mean():.2f}; steps {taken.tolist()}")


def search_part(model, x, target, ids, eps, norm, steps):
    logits, _ = unlearned_logits(model, x, target, eta=0.1, unlearn_step="normalised")
    log_q = F.log_softmax(logits, -1)
    rows = torch.arange(len(target))
    for name, options in SEARCHES.items():
        began = time.perf_counter()
        if options is None:
            if norm != "linf":
                continue
            found = [previous_search(model, x, log_q, eps, steps, start=begin) for begin in
                     (None, _random_start(x, eps, norm, ids, 0))]
        else:
            found = [match_activations(model, x, log_q, eps, norm, steps, random_start=random,
                                       image_ids=ids, **options)[0] for random in (False, True)]
        seconds = time.perf_counter() - began
        with torch.no_grad():
            log_p = F.log_softmax(model(found[0]), -1)
        kl = kl_divergence(log_q, log_p, "forward")
        p_c = log_p.exp()[rows, target]
        delta = (x - found[0]).flatten(1)
        on_face = ((delta.abs() >= 0.999 * eps).float().mean(1) if norm == "linf"
                   else (delta.norm(dim=1) >= 0.999 * eps).float())
        maps = [integrated_gradients(model, x, b, target, 16).attributions for b in found]
        rho, overlap = compare_maps(maps[0], maps[1], 1000, "signed")  # as its recorded results
        print(f"{name:34s} KL mean {kl.mean():.3f} median {kl.median():.3f}; "
              f"p_c(x')<0.5 {int((p_c < 0.5).sum())}/{len(p_c)}; on faces {on_face.mean():.2f}; "
              f"noise floor Spearman {rho.mean():.3f} top-1000 {overlap.mean():.3f}; "
              f"{seconds:.0f} s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["unlearn", "search"], default="search")
    parser.add_argument("--eps", type=float, default=4.0, help="/255 for linf, raw for l2")
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    model = set_runtime(load_model("efficientnet_lite0"), fold_batchnorm=True,
                        channels_last=True)
    x, target, ids = images(model)
    if args.part == "unlearn":
        unlearning_part(model, x, target)
    else:
        eps = args.eps / 255 if args.norm == "linf" else args.eps
        search_part(model, x, target, ids, eps, args.norm, args.steps)


if __name__ == "__main__":
    main()

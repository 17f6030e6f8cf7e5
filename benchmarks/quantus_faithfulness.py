"""Our MuFidelity against Quantus's ``FaithfulnessCorrelation`` (both: Bhatt et al. 2020).

Same model (offline EfficientNet-Lite0), same photos (the first embedded ones), same
IG-black attributions (``uni.attribute``), same explained class (the prediction). Prints,
per image: our MuFidelity (docs/design.md §3 defaults, ``prob`` and ``logit``), Quantus with its
defaults (logits; ``--quantus-softmax`` adds ``softmax=True``), and a re-implementation of Quantus's
definition on top of our scoring code using Quantus's own random draws (it must match
Quantus to float precision: the remaining gap is the definition, not the arithmetic).

    .venv/bin/python benchmarks/quantus_faithfulness.py [--images 3] [--steps 16]
        [--quantus-softmax] [--noise]

The definitions differ in (checked against quantus 0.6 ``FaithfulnessCorrelation``):

- what is removed: we set whole grid cells (9x9 grid, 16 of 81 cells = 20% of the
  image, all channels) to 0; Quantus sets ``subset_size=224`` random *features* to the
  baseline, a feature being one channel of one pixel (224 of 150528 values = 0.15%),
  drawn independently per run, and the attribution sum is over the same features;
- the baseline value: ours 0 (black in pixel space); Quantus ``perturb_baseline="black"``
  is the per-image minimum of ``x`` (0 only if the image has a black value);
- runs: 128 subsets (ours) vs ``nr_runs=100``; randomness: ours keyed on
  ``(seed, image_id)``, Quantus uses NumPy's global generator;
- the explained output: ours ``F_c`` (softmax probability by default); Quantus defaults
  to logits (``softmax=False``);
- attributions: Quantus ``normalise=True`` divides by the batch's max |A| and
  ``abs=False``: a positive scale, so the Pearson correlation is unchanged; both use the
  signed attributions and the Pearson correlation.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import uni
from uni.data import build_dataset
from uni.metrics import mufidelity
from uni.models import class_score


def quantus_scores(model, x, target, attributions, softmax: bool, seed: int) -> np.ndarray:
    import quantus

    np.random.seed(seed)
    metric = quantus.FaithfulnessCorrelation(
        return_aggregate=False, disable_warnings=True, display_progressbar=False
    )
    return np.asarray(metric(
        model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=attributions.numpy(),
        device="cpu", softmax=softmax, channel_first=True,
    ))


@torch.no_grad()
def quantus_definition_ours(model, x, target, attributions, seed: int, nr_runs: int = 100,
                            subset_size: int = 224) -> dict[str, np.ndarray]:
    """Quantus's procedure (same NumPy draws, in the same order) on our scoring code."""
    np.random.seed(seed)
    n = x.shape[0]
    flat_x = x.reshape(n, -1)
    flat_a = attributions.reshape(n, -1).double()
    fill = flat_x.min(1).values  # Quantus "black": the image's minimum
    logits = model(x)
    full = {"logit": class_score(logits, target, "logit"), "prob": class_score(logits, target)}
    drops = {k: [] for k in full}
    sums = []
    for _ in range(nr_runs):
        index = torch.as_tensor(np.stack(
            [np.random.choice(flat_x.shape[1], subset_size, replace=False) for _ in range(n)]
        ))
        np.random.uniform(size=n)  # Quantus draws its "uniform" fill every run, used or not
        perturbed = flat_x.clone().scatter_(1, index, fill[:, None].expand(-1, subset_size))
        out = model(perturbed.view_as(x))
        for kind in full:
            drops[kind].append((full[kind] - class_score(out, target, kind)).double())
        sums.append(flat_a.gather(1, index).sum(1))
    sums = torch.stack(sums, 1).numpy()
    return {
        kind: np.array([np.corrcoef(sums[i], torch.stack(d, 1)[i].numpy())[0, 1]
                        for i in range(n)])
        for kind, d in drops.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16, help="IG steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantus-softmax", action="store_true",
                        help="also run Quantus with softmax=True (another 100 passes)")
    parser.add_argument("--noise", action="store_true",
                        help="also rerun both estimators with seed+1 (their draw-to-draw noise)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    model = uni.load_model("efficientnet_lite0")
    dataset = build_dataset("embedded", model.data_config, limit=args.images)
    x = torch.stack([dataset[i].image for i in range(len(dataset))])
    ids = [dataset[i].image_id for i in range(len(dataset))]
    with torch.no_grad():
        target = model(x).argmax(-1)
    attributions = uni.attribute(model, x, target, method="ig_black", steps=args.steps,
                                 image_ids=ids, seed=args.seed).detach()

    ours = {kind: mufidelity(model, x, attributions, target, output=kind, image_ids=ids,
                             seed=args.seed, batch_size=32).numpy()
            for kind in ("prob", "logit")}
    kinds = ("logit", "prob") if args.quantus_softmax else ("logit",)
    theirs = {kind: quantus_scores(model, x, target, attributions, kind == "prob", args.seed)
              for kind in kinds}
    mirrored = quantus_definition_ours(model, x, target, attributions, args.seed)
    if args.noise:  # how much each estimate moves with its random draws alone
        ours_again = mufidelity(model, x, attributions, target, output="prob", image_ids=ids,
                                seed=args.seed + 1, batch_size=32).numpy()
        mirrored_again = quantus_definition_ours(model, x, target, attributions, args.seed + 1)

    print(f"EfficientNet-Lite0, IG-black ({args.steps} steps), {len(ids)} embedded photos, "
          f"explained class = prediction, seed {args.seed}")
    columns = {"ours prob": ours["prob"], "ours logit": ours["logit"]}
    columns.update({f"Quantus {k}": theirs[k] for k in kinds})
    columns.update({f"Q-def ours {k}": mirrored[k] for k in ("logit", "prob")})
    if args.noise:
        columns["ours prob seed+1"] = ours_again
        columns["Q-def logit seed+1"] = mirrored_again["logit"]
    print(" | ".join(f"{h:>17}" for h in ("image", "class", *columns)))
    for i, image_id in enumerate(ids):
        cells = [f"{image_id:>17}", f"{int(target[i]):>17}"]
        print(" | ".join(cells + [f"{float(v[i]):>17.4f}" for v in columns.values()]))
    print(" | ".join([f"{'mean':>17}", f"{'':>17}"]
                     + [f"{float(np.mean(v)):>17.4f}" for v in columns.values()]))
    print("(Q-def ours: Quantus's definition and NumPy draws, scored by our code"
          + ("; seed+1: the same estimator with other random draws)" if args.noise else ")"))

    same_code = max(np.abs(mirrored[k] - theirs[k]).max() for k in kinds)
    gap = max(np.abs(ours[k] - theirs[k]).max() for k in kinds)
    print()
    print(f"Quantus's definition run on our scoring code vs Quantus: max |difference| = "
          f"{same_code:.2e} -> {'AGREE' if same_code < 1e-4 else 'DISAGREE'} (same draws)")
    print(f"our MuFidelity vs Quantus FaithfulnessCorrelation: max |difference| = {gap:.3f} -> "
          f"{'agree' if gap < 0.05 else 'they differ'}; not the same estimator:")
    print("  removed set: ours 16 of 81 grid cells (20% of the pixels, all channels) vs Quantus "
          "224 random single-channel values (0.15% of the 150528 features)")
    print("  baseline: ours 0 vs Quantus 'black' = the image's minimum value; runs: ours 128 "
          "subsets keyed on (seed, image_id) vs Quantus nr_runs=100 from NumPy's global RNG")
    print("  output: ours F_c = softmax probability by default vs Quantus logits by default "
          "(softmax=False); both: signed attributions (abs=False), Pearson correlation, "
          "Quantus's normalise=True is a positive scale (no effect on Pearson)")
    print("  Quantus's draws also depend on the batch an image is in (one global NumPy RNG)")
    if args.noise:
        spread_ours = np.abs(ours_again - ours["prob"]).max()
        spread_quantus = np.abs(mirrored_again["logit"] - mirrored["logit"]).max()
        print(f"  noise: changing only the random draws moves ours by up to {spread_ours:.3f} "
              f"and Quantus's default estimator by up to {spread_quantus:.3f}")
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()

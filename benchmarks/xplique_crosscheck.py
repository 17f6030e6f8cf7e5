"""Our deletion / insertion and MuFidelity under ``protocol=paper`` against Xplique's
``Deletion``, ``Insertion`` and ``MuFidelity`` (the metrics the UNI paper cites) on the same
model, photos and attributions. Not run by the tests.

Needs ``xplique`` and TensorFlow: ``pip install -e '.[xplique]'``, best in a separate venv
(xplique 2.x pulls ``tensorflow[and-cuda]`` on Linux; ``tensorflow-cpu`` plus
``pip install --no-deps xplique`` and its small dependencies is enough here).

    python benchmarks/xplique_crosscheck.py [--images 2] [--steps 16] [--seeds 5]

Xplique is called with its defaults (deletion / insertion: 10 steps, baseline 0.0;
MuFidelity: 9x9 grid, subset_percent 0.2, 200 samples, baseline 0.0) and
``activation="softmax"``. Its model is our network behind a numpy callable that takes
channels-last images in the model's normalised input space, so its 0.0 is our
``model_zero`` and its scores are our ``F_c`` with ``output=prob``. Ours run with the
options of ``conf/protocol/paper.yaml``.

- Deletion / insertion are deterministic: the per-image relative difference should be
  below 1e-3. Ours puts the true fraction of changed pixels on the x-axis, Xplique equally
  spaced steps (about 1e-5 apart at 224 px); ties in the attribution order are broken in
  the opposite direction (none with IG attributions in practice).
- MuFidelity draws random masks (Xplique: ``tf.random``, one set of masks shared by the
  images of a batch, cells from a nearest-neighbour resize of the 9x9 grid; ours: keyed on
  ``(seed, image_id)``), so only their distributions can agree: per seed, the mean over
  images of each, and the spread over seeds of each and of their difference.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import uni
from uni.data import build_dataset
from uni.metrics import deletion, insertion, mufidelity

PAPER = Path(__file__).resolve().parents[1] / "conf" / "protocol" / "paper.yaml"


def paper_options() -> dict[str, dict]:
    """``eval.<metric>`` options of the paper protocol."""
    return yaml.safe_load(PAPER.read_text())["eval"]


def numpy_model(model: torch.nn.Module, batch_size: int):
    """``model``'s network as Xplique's callable: channels-last inputs in the model's
    normalised input space (numpy or TF) -> logits (numpy)."""

    @torch.no_grad()
    def call(z) -> np.ndarray:
        images = torch.from_numpy(np.asarray(z, dtype=np.float32)).permute(0, 3, 1, 2)
        return torch.cat([model.net(chunk) for chunk in images.split(batch_size)]).numpy()

    return call


def normalised_channels_last(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    return ((x - model.mean) / model.std).permute(0, 2, 3, 1).contiguous().numpy()


def xplique_per_image(metric_class, callable_model, z, explanations, one_hot, batch_size,
                      **options) -> np.ndarray:
    """Xplique's score of every image on its own (its ``evaluate`` averages over inputs)."""
    return np.array([
        metric_class(callable_model, z[i : i + 1], one_hot[i : i + 1], batch_size=batch_size,
                     activation="softmax", **options).evaluate(explanations[i : i + 1])
        for i in range(len(z))
    ])


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=16, help="IG steps")
    parser.add_argument("--seeds", type=int, default=5, help="MuFidelity draws to compare")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (a spread needs two draws)")
    import tensorflow as tf
    from xplique.metrics import Deletion, Insertion, MuFidelity

    start = time.perf_counter()
    model = uni.load_model("efficientnet_lite0")
    dataset = build_dataset("embedded", model.data_config, limit=args.images)
    x = torch.stack([dataset[i].image for i in range(len(dataset))])
    ids = [dataset[i].image_id for i in range(len(dataset))]
    with torch.no_grad():
        target = model(x).argmax(-1)
    attributions = uni.attribute(model, x, target, method="ig_black", steps=args.steps,
                                 image_ids=ids).detach()

    callable_model = numpy_model(model, args.batch_size)
    z = normalised_channels_last(model, x)
    explanations = attributions.permute(0, 2, 3, 1).contiguous().numpy()
    one_hot = np.eye(model.num_classes, dtype=np.float32)[target.numpy()]
    paper = paper_options()
    common = {"output": "prob", "batch_size": args.batch_size, "image_ids": ids}
    theirs_common = (callable_model, z, explanations, one_hot, args.batch_size)

    print(f"EfficientNet-Lite0, IG-black ({args.steps} steps), {len(ids)} embedded photos, "
          "F_c = softmax probability of the predicted class")
    for name, ours_fn, theirs_class in (("deletion", deletion, Deletion),
                                        ("insertion", insertion, Insertion)):
        ours = ours_fn(model, x, attributions, target, **paper[name], **common).numpy()
        theirs = xplique_per_image(theirs_class, *theirs_common)
        gap = relative(ours, theirs)
        print(f"{name:>10}: ours {np.round(ours, 5)} | Xplique {np.round(theirs, 5)} | "
              f"max relative difference {gap.max():.1e} -> "
              f"{'AGREE' if gap.max() < 1e-3 else 'DISAGREE'}")

    ours_by_seed, theirs_by_seed = [], []
    for seed in range(args.seeds):
        ours_by_seed.append(mufidelity(model, x, attributions, target, seed=seed,
                                       **paper["mufidelity"], **common).numpy())
        tf.random.set_seed(seed)
        theirs_by_seed.append(xplique_per_image(MuFidelity, *theirs_common))
    ours_by_seed, theirs_by_seed = np.array(ours_by_seed), np.array(theirs_by_seed)
    ours_mean, theirs_mean = ours_by_seed.mean(1), theirs_by_seed.mean(1)  # per seed
    difference = ours_mean - theirs_mean
    standard_error = difference.std(ddof=1) / np.sqrt(args.seeds)
    print(f"MuFidelity over {args.seeds} seeds (mean over images per seed):")
    for label, values in (("ours", ours_mean), ("Xplique", theirs_mean)):
        print(f"  {label:<8} {np.round(values, 4)}  mean {values.mean():.4f} "
              f"sd {values.std(ddof=1):.4f}")
    print(f"  ours - Xplique: mean {difference.mean():+.4f}, sd over seeds "
          f"{difference.std(ddof=1):.4f}, standard error {standard_error:.4f} -> "
          f"{'consistent' if abs(difference.mean()) <= 2 * standard_error else 'DIFFERENT'} "
          "(|mean| within 2 standard errors)")
    per_image = np.abs(ours_by_seed.mean(0) - theirs_by_seed.mean(0))
    print(f"  per image, |mean over seeds of ours - Xplique|: {np.round(per_image, 4)}")
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()

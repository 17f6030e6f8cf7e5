"""The figure of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps", Fig. 2): for one
image, each method's map (rows) on the trained model and after each step of cascading
randomisation (columns, from the logits to the stem; :mod:`uni.metrics.sanity`). The
records keep similarities, not maps, so the maps are explained again here, for the first
images of a ``experiment=sanity`` run, with its config:

    python -m uni.analysis.sanity_figure RUN_DIR [OUT_DIR] [--images N]

writes ``OUT_DIR/figures/sanity_maps_<image>.png`` (OUT_DIR: the results directory the
report is built in; the "Sanity checks" section shows the figures it finds there).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import OmegaConf

from uni.records import saved_config, write_figure

if TYPE_CHECKING:  # the maps are explained again: torch only when they are
    import torch

    from uni.methods import Explainer


def cascade_maps(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                 explainer: Explainer, image_ids: list[str], seed: int = 0
                 ) -> list[tuple[str, torch.Tensor]]:
    """``(label, (N, H, W) channel-summed maps)``: the trained model's, then one per
    cascading step, labelled by the last block group it randomised (the stem: all)."""
    from uni.methods import Explainer
    from uni.metrics._common import pixel_map
    from uni.metrics.sanity import randomised, steps

    maps = [("trained", pixel_map(explainer(x, target, image_ids=image_ids,
                                            seed=seed).attributions))]
    for _, _, groups in steps(model, ["cascading"]):
        other = Explainer(randomised(model, groups, seed), explainer.method, explainer.options,
                          explainer.output)
        again = other(x, target, image_ids=image_ids, seed=seed).attributions
        maps.append((groups[-1], pixel_map(again)))
    return maps


def draw(image: np.ndarray, rows: dict[str, list[tuple[str, np.ndarray]]], path: Path) -> Path:
    """The image, then one row per method of ``|map|`` normalised per map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(r) for r in rows.values())
    figure, axes = plt.subplots(len(rows), columns + 1,
                                figsize=(1.3 * (columns + 1), 1.3 * len(rows) + 0.6),
                                squeeze=False)
    for i, (method, maps) in enumerate(rows.items()):
        axes[i, 0].imshow(image.transpose(1, 2, 0).clip(0, 1))
        axes[i, 0].set_ylabel(method, fontsize=7)
        for j, (label, values) in enumerate(maps, start=1):
            magnitude = np.abs(values)
            axes[i, j].imshow(magnitude / max(magnitude.max(), 1e-30), cmap="gray")
            if i == 0:
                axes[i, j].set_title(label, fontsize=6, rotation=30)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("Cascading randomisation, logits to stem (Adebayo et al. 2018)",
                    fontsize=9)
    figure.tight_layout()
    write_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--images", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from uni.engine.job import prepare

    saved = saved_config(args.run_dir)
    if saved is None:
        raise SystemExit(f"error: {args.run_dir} holds no .hydra/config.yaml: not a run directory")
    cfg = OmegaConf.to_container(saved, resolve=True)
    cfg["attribution_store"] = "off"
    ready = prepare(cfg, args.run_dir)
    job = ready.job
    written = []
    for index in range(min(args.images, len(ready.dataset))):
        sample = ready.dataset[index]
        x = sample.image[None].to(job.device)
        with torch.no_grad():
            target = job.model(x).argmax(-1)
        rows = {method: [(label, maps[0].cpu().numpy()) for label, maps in cascade_maps(
                    job.model, x, target, job.explainer(method), [sample.image_id], job.seed)]
                for method in job.methods}
        name = re.sub(r"[^\w.-]", "_", sample.image_id)
        written.append(draw(sample.image.numpy(), rows, (args.out_dir or args.run_dir.parent)
                            / "figures" / f"sanity_maps_{name}.png"))
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()

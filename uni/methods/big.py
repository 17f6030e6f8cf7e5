"""BIG: Boundary-based Integrated Gradients (Wang, Fredrikson & Datta 2021, "Robust
Models Are More Interpretable Because Attributions Look Normal", NeurIPS).

IG from the nearest point on the decision boundary. The authors (github.com/zifanw/
boundary, ``boundary/default.py``) find it with an ensemble of L2 attacks (PGD at
increasing radii, and Carlini-Wagner) and keep each image's closest adversarial point.
Here: the PGD part only, written on UNI's search (:func:`uni.methods.unlearning.ball_search`):
untargeted L2 PGD minimising ``log p_c`` from ``x``, at the radii ``eps`` in
increasing order (the authors' ``[36/255, 64/255, 0.3, 0.5, 0.7, 0.9, 1.1]``, there
in their model's input units, here in pixels), ``pgd_steps`` 40 sign steps of
``2.5 r / T`` (Madry et al.; the authors' relative step ``2 r / T`` is foolbox's),
the last iterate; the smallest radius whose point is misclassified wins. Then (ours,
``refine`` > 0) bisection on the segment from ``x`` to that point puts the baseline on
the boundary: the adversarial end of an interval ``2^-refine`` of the segment long.
An image no radius misclassifies keeps the last radius's point (``on_boundary`` 0).

Diagnostics: ``boundary_radius`` (the radius that
succeeded, ``inf`` if none), ``on_boundary`` (1 if misclassified), ``margin``
(``z_c - max_{j != c} z_j`` at the baseline: just below 0 on the boundary) and the path's
(``dist_l2`` and ``dist_linf`` among them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uni.contract import bounded
from uni.errors import ConfigError
from uni.methods._registry import not_idgi, register_method, register_options
from uni.methods.path import Attribution, integrated_gradients
from uni.methods.unlearning import ball_search, class_log_prob

CATALOG = [{"name": "big", "order": 80}]  # read by uni.catalog

RADII = (36 / 255, 64 / 255, 0.3, 0.5, 0.7, 0.9, 1.1)
PGD_STEPS = 40
REFINE = 10


def margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``z_c - max_{j != c} z_j`` per row: negative once another class wins."""
    own = logits.gather(1, target[:, None])[:, 0]
    others = logits.scatter(1, target[:, None], float("-inf"))
    return own - others.amax(1)


def _margins(model, points, target, chunk) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([margin(model(points[s : s + chunk]), target[s : s + chunk])
                          for s in range(0, points.shape[0], chunk)])


def boundary_baseline(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eps: Sequence[float] = RADII,
    pgd_steps: int = PGD_STEPS,
    refine: int = REFINE,
    internal_batch_size: int = 4,
    image_ids: Sequence[str] = (),
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The boundary point per image and its diagnostics (module docstring)."""
    radii = [float(r) for r in ([eps] if isinstance(eps, (int, float)) else eps)]
    if not radii or any(r <= 0 for r in radii) or pgd_steps < 1 or refine < 0:
        raise ConfigError(f"big: eps={eps} must be positive radii, pgd_steps={pgd_steps} "
                          f">= 1 and refine={refine} >= 0")
    n = x.shape[0]
    chunk = max(1, int(internal_batch_size))
    x = x.detach()
    found = x.clone()
    radius = torch.full((n,), float("inf"), device=x.device)
    pending = torch.arange(n, device=x.device)
    for r in sorted(radii):
        if pending.numel() == 0:
            break
        point, _ = ball_search(model, x[pending], class_log_prob(target[pending]), r, "l2",
                               pgd_steps, None, False, [], seed, "sign", "constant", None,
                               "last")
        found[pending] = point
        crossed = _margins(model, point, target[pending], chunk) < 0
        radius[pending[crossed]] = r
        pending = pending[~crossed]
    # bisection on [x, found]: low stays on c's side, high on the other
    crossed = torch.isfinite(radius)
    low = torch.zeros(n, device=x.device)
    high = torch.ones(n, device=x.device)
    rows = crossed.nonzero().flatten()
    shape = (-1, 1, 1, 1)
    for _ in range(refine if rows.numel() else 0):
        middle = (low[rows] + high[rows]) / 2
        points = x[rows] + middle.view(shape) * (found[rows] - x[rows])
        across = _margins(model, points, target[rows], chunk) < 0
        high[rows] = torch.where(across, middle, high[rows])
        low[rows] = torch.where(across, low[rows], middle)
    baseline = x + high.view(shape) * (found - x)
    diagnostics = {
        "boundary_radius": radius, "on_boundary": crossed.float(),
        "margin": _margins(model, baseline, target, chunk),
    }
    return baseline.detach(), diagnostics


def big(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids: Sequence[str] = (),
    seed: int = 0,
    idgi: bool = False,
    **options,
) -> Attribution:
    """BIG attributions: IG from :func:`boundary_baseline` (``options`` go to it)."""
    baseline, diagnostics = boundary_baseline(
        model, x, target, internal_batch_size=internal_batch_size, image_ids=image_ids,
        seed=seed, **options)
    result = integrated_gradients(model, x, baseline, target, steps, rule, output,
                                  internal_batch_size, idgi=idgi)
    result.diagnostics.update(diagnostics)
    return result


def big_baselines(model, x, target, *, image_ids=(), seed=0, **options):
    """BIG's baseline without its path integral, as ``(baselines, draws)``."""
    baseline, _ = boundary_baseline(model, x, target, image_ids=image_ids, seed=seed,
                                    **options)
    return baseline, 1


register_options(refine=bounded(0))
register_method("big", big, catalog=CATALOG, straight_line=not_idgi, baselines=big_baselines,
                option_functions=(boundary_baseline,))

"""AGI: Adversarial Gradient Integration (Pan, Li & Zhu 2021, "Explaining Deep Neural
Network Models with Adversarial Gradient Integration", IJCAI).

For each of ``classes`` false classes ``t``, an attack path starts at ``x`` and ascends
``p_t`` by signed steps, ``x^{i+1} = clip(x^i + eps sign(grad p_t(x^i)), 0, 1)``, until
``t`` is the prediction or ``attack_steps`` steps are taken; along it the attribution
accumulates ``-grad F_c(x^i) ⊙ (x^{i+1} - x^i)``: the integral of ``F_c``'s gradient
along the path from its adversarial end back to ``x``. AGI sums over the false classes,
so ``sum A ≈ sum_t (F_c(x) - F_c(x_t))`` (first order; exact for a linear ``F_c``).

Defaults are the authors' code's (github.com/pd90506/AGI, ``AGI_main.py``): 20 false
classes evenly spaced over the class indices (``range(0, C, C // 20)``; the predicted
class replaced by the first index outside that range), step ``eps = 0.05`` in pixel units
(their model normalises inside, as ours do); ``attack_steps`` 20 (their script's default
is 50, their evaluation class 15). Their code steps every iteration from the *original* image
(``fgsm_step(image, ...)``), so its "path" never leaves the ``eps``-cube around ``x``;
we follow the paper's Algorithm 1, where each step starts at the last point.

Batched over images x classes: each iteration is one forward and two backward passes
(``p_t`` and ``F_c``) per path still running, in chunks of ``internal_batch_size``.
Not a straight line, and not one path: no baseline, no path scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uni.contract import bounded
from uni.errors import ConfigError
from uni.methods._registry import register_method, register_options
from uni.methods.path import Attribution
from uni.models import class_score

CATALOG = [{"name": "agi", "order": 70}]  # read by uni.catalog

CLASSES = 20
EPS = 0.05
STEPS = 20


def false_classes(num_classes: int, classes: int, target: torch.Tensor) -> torch.Tensor:
    """``(N, classes)`` class indices per image: evenly spaced, ``range(0, C, C //
    classes)`` as in the authors' code, the image's own class replaced by the first
    index outside that range (the authors' code drops it and runs one path fewer)."""
    spaced = list(range(0, num_classes, max(1, num_classes // classes)))
    order = spaced + [j for j in range(num_classes) if j not in set(spaced)]
    rows = [[j for j in order if j != c][:classes] for c in target.tolist()]
    return torch.tensor(rows, device=target.device, dtype=torch.long)


def adversarial_paths(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    adversaries: torch.Tensor,
    eps: float,
    attack_steps: int,
    output: str = "prob",
    internal_batch_size: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGI's paths for the false classes ``adversaries`` ``(N, k)``: the attributions
    ``(N, ...)`` summed over the ``k`` paths, each path's end point ``(N * k, ...)``
    (image-major) and its number of steps ``(N * k,)``."""
    n, per_image = adversaries.shape
    owner = torch.arange(n, device=x.device).repeat_interleave(per_image)
    goal = adversaries.flatten()
    own = target[owner]
    points = x.detach()[owner].clone()
    attributions = torch.zeros_like(x, dtype=torch.float32)
    running = torch.ones(goal.numel(), dtype=torch.bool, device=x.device)
    taken = torch.zeros(goal.numel(), device=x.device)
    chunk = max(1, int(internal_batch_size))
    for _ in range(attack_steps):
        rows = running.nonzero().flatten()
        if rows.numel() == 0:
            break
        # chunks of one image's paths: an image's steps come from the same model calls in
        # any batch (batched kernels round differently, and signed steps amplify that)
        _, per_owner = torch.unique_consecutive(owner[rows], return_counts=True)
        for r in (part[s : s + chunk] for part in rows.split(per_owner.tolist())
                  for s in range(0, part.numel(), chunk)):
            with torch.enable_grad():
                here = points[r].requires_grad_(True)
                out = model(here)
                reached = out.argmax(-1) == goal[r]
                p_goal = F.softmax(out, -1).gather(1, goal[r, None])[:, 0]
                (ascent,) = torch.autograd.grad(p_goal.sum(), here, retain_graph=True)
                (gradient,) = torch.autograd.grad(
                    class_score(out, own[r], output).sum(), here)
            go = ~reached
            stepped = (here.detach() + eps * ascent.sign()).clamp(0, 1)
            moved = (stepped - here.detach()) * go.view(-1, 1, 1, 1)
            attributions.index_add_(0, owner[r], (-gradient * moved).float())
            points[r] = here.detach() + moved
            taken[r] += go.float()
            running[r] = go
    return attributions, points, taken


def agi(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    classes: int = CLASSES,
    eps: float = EPS,
    attack_steps: int = STEPS,
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids=(),
    seed: int = 0,
) -> Attribution:
    """AGI attributions for a batch (module docstring). Diagnostics: ``score_input``
    (``F_c(x)``), ``attack_success`` (fraction of the paths that end at their class)
    and ``attack_steps`` (mean steps per path). ``image_ids`` and ``seed`` are accepted
    for the common signature (nothing is random)."""
    if classes < 1 or attack_steps < 1 or eps <= 0:
        raise ConfigError(f"agi: classes={classes} and attack_steps={attack_steps} must be "
                          f"positive integers and eps={eps} positive")
    n = x.shape[0]
    with torch.no_grad():
        logits = model(x)
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ConfigError("agi needs a classifier with at least two classes")
    adversaries = false_classes(num_classes, min(classes, num_classes - 1), target)
    attributions, ends, taken = adversarial_paths(model, x, target, adversaries, eps,
                                                  attack_steps, output, internal_batch_size)
    chunk = max(1, int(internal_batch_size))
    with torch.no_grad():
        score_input = class_score(logits, target, output).float()
        final = torch.cat([model(ends[s : s + chunk]).argmax(-1)
                           for s in range(0, ends.shape[0], chunk)])
    per_image = adversaries.shape[1]
    success = (final == adversaries.flatten()).float().view(n, per_image).mean(1)
    diagnostics = {"score_input": score_input, "attack_success": success,
                   "attack_steps": taken.view(n, per_image).mean(1)}
    return Attribution(attributions.to(x.dtype).contiguous(), None, diagnostics)


register_options(classes=bounded(1), attack_steps=bounded(1))
register_method("agi", agi, catalog=CATALOG, straight_line=False)

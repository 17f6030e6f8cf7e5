"""UNI: the learned, image-specific baseline of Choi, Duplessis & Belongie, "Unlearning-based
Neural Interpretations" (ICLR 2025, arXiv 2410.08069), Algorithm 1.

1. Unlearn in model space: ``theta_hat = theta + eta * grad_theta CE(F(x; theta), c)``
   (one gradient-ascent step per image; options: the step normalised to length ``eta``,
   repeated ``unlearn_steps`` times or until ``p_c(x; theta_hat)`` falls below a
   threshold), target ``q = softmax(F(x; theta_hat))``. Per-sample parameters are never
   materialised as model copies: ``torch.func`` (``vmap(grad)`` + ``functional_call``) in
   chunks, or a per-image loop over ``functional_call`` that gives the same numbers.
2. Match activations in image space: projected descent on ``KL(q || softmax(F(x'; theta)))``
   over the ``eps``-ball around ``x`` (L-inf or L2), inside [0, 1]; the best iterate by KL
   is the baseline, with the search's convergence diagnostics.
3. Integrate: IG from ``x'`` to ``x`` (:func:`uni.methods.path.integrated_gradients`).

Batch invariance: steps 1-2 run one image at a time. They are discontinuous in the model's
outputs (the search's sign and first Adam steps, its best iterate by KL, the stopping
rules), and a model call on a batch rounds differently from one on a single image (float32
kernels: logits ~1e-6 apart, a ReLU6 input on the other side of its kink), so a batched
search gave an image another baseline in another batch (4-10% relative L1 in its
attributions). Step 3 is continuous in the gradients and runs batched (~1e-7).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from uni import rng
from uni.contract import bounded, one_of
from uni.errors import ConfigError, RunError
from uni.methods._registry import not_idgi, register_method, register_options
from uni.methods.path import integrated_gradients
from uni.models import trained_parameterisation

# the paper's Algorithm 1 as written is a control of UNI (docs/methods.md), as is UNI with
# IDGI's projection (the config uni_idgi); the paper's method last, as in its tables
# (uni.catalog reads this without importing the module)
CATALOG = [
    {"name": "uni_paper", "order": 100, "group": "control"},
    {"name": "uni", "order": 110, "control_entries": ["uni_idgi"]},
]

NORMS = ("linf", "l2")
KL_DIRECTIONS = ("forward", "reverse")  # KL(q || p) or KL(p || q), p = model on x'
UNLEARN_MODES = ("auto", "vmap", "loop")
UNLEARN_STEPS = ("fixed", "normalised")  # theta + eta g  |  theta + eta g / ||g||
UPDATES = ("sign", "adam")  # the search direction: (normalised) gradient, or Adam's
SCHEDULES = ("constant", "cosine")  # step size over the search's iterations
RETURNS = ("best", "last")  # the search returns its best iterate by KL, or its last
ADAM_BETAS = (0.9, 0.999)
# Algorithm 1 as the paper writes it (method=uni_paper; its YAML states each value):
# one fixed, un-normalised ascent step theta + 0.01 grad CE, the L-inf 4/255 ball, sign
# PGD with the previous constant 2.5 eps / T steps, the last iterate. The KL direction
# is ambiguous in the text; forward (KL(F(x; theta_hat) || F(x'; theta))) is read here.
PAPER = {
    "unlearn_step": "fixed", "eta": 0.01, "unlearn_steps": 1, "unlearn_until": None,
    "eps": 4 / 255, "norm": "linf", "pgd_steps": 20, "pgd_update": "sign",
    "pgd_schedule": "constant", "pgd_step_size": None, "pgd_return": "last",
    "kl_tolerance": None, "random_start": False, "kl_direction": "forward",
}


def _split_state(model: torch.nn.Module):
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return params, buffers


def _ascent(g: dict[str, torch.Tensor], eta: float, step: str) -> dict[str, torch.Tensor]:
    """The parameter displacement of one unlearning step: ``eta g`` or ``eta g / ||g||``
    (``||g||`` over all parameters together)."""
    if step == "fixed":
        return {k: eta * v for k, v in g.items()}
    norm = torch.sqrt(sum((v.double() ** 2).sum() for v in g.values())).clamp_min(1e-30)
    return {k: (eta / norm).to(v.dtype) * v for k, v in g.items()}


def unlearned_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    eta: float,
    unlearn_steps: int = 1,
    mode: str = "auto",
    chunk_size: int = 8,
    unlearn_step: str = "fixed",
    unlearn_until: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``F(x_i; theta_hat_i)`` of each image under its own unlearned parameters,
    and how many ascent steps each image took.

    ``unlearn_step``: ``fixed`` (``theta + eta g``, the paper's Algorithm 1) or
    ``normalised`` (``theta + eta g / ||g||``: a step of length ``eta`` whatever the
    image's confidence; the fixed step scales with ``1 - p_c`` and barely moves confident
    images). ``unlearn_until``: repeat the step while ``p_c(x; theta_hat) >=`` this
    threshold, at most ``unlearn_steps`` times (``None``: exactly ``unlearn_steps``).

    ``mode="auto"`` uses the per-image loop on CPU (measured faster there: median 171 vs
    209 ms/img, best 147 vs 190, EfficientNet-Lite0 at 224 px, batch 8, 2 CPU threads)
    and ``vmap`` on accelerators. Both give the same numbers (float64: 1e-14 apart); in
    float32 the batched and single-image kernels round differently, which can put a
    ReLU6 input on the other side of its kink and change the unlearned logits by ~1%.
    """
    if mode not in UNLEARN_MODES:
        raise ConfigError(f"unlearn_mode={mode!r} is not one of {list(UNLEARN_MODES)}")
    if unlearn_step not in UNLEARN_STEPS:
        raise ConfigError(f"unlearn_step={unlearn_step!r} is not one of {list(UNLEARN_STEPS)}")
    if mode == "auto":
        mode = "loop" if x.device.type == "cpu" else "vmap"
    model = trained_parameterisation(model)  # the step moves in the trained parameters
    params, buffers = _split_state(model)
    threshold = -math.inf if unlearn_until is None else float(unlearn_until)

    def logits_of(p, xi):
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0)

    def loss(p, xi, ci):  # -log p_c, and itself as aux (p_c decides whether to go on)
        value = F.cross_entropy(logits_of(p, xi).unsqueeze(0), ci.unsqueeze(0))
        return value, value.detach()

    if mode == "vmap":
        def one_image(xi, ci):
            # data-dependent stopping cannot branch under vmap: a finished image takes
            # zero-length steps (the same parameters as stopping)
            p, taken = params, torch.zeros((), device=xi.device)
            for _ in range(unlearn_steps):
                g, value = grad(loss, has_aux=True)(p, xi, ci)
                go = (torch.exp(-value) >= threshold).to(xi.dtype)
                step = _ascent(g, eta, unlearn_step)
                p = {k: p[k] + go * step[k] for k in p}
                taken = taken + go
            return logits_of(p, xi), taken

        batched = vmap(one_image, randomness="different")
        with torch.enable_grad():
            parts = [batched(x[s : s + chunk_size], target[s : s + chunk_size])
                     for s in range(0, x.shape[0], chunk_size)]
        return (torch.cat([a for a, _ in parts]).detach(),
                torch.cat([b for _, b in parts]).detach())

    out, taken = [], []
    for xi, ci in zip(x, target):
        p, steps = params, 0
        for _ in range(unlearn_steps):
            leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
            with torch.enable_grad():
                value, _ = loss(leaves, xi, ci)
                if math.exp(-float(value.detach())) < threshold:
                    break
                grads = torch.autograd.grad(value, list(leaves.values()))
            step = _ascent(dict(zip(leaves, grads)), eta, unlearn_step)
            p = {k: v.detach() + step[k] for k, v in leaves.items()}
            steps += 1
        with torch.no_grad():
            out.append(logits_of(p, xi))
        taken.append(steps)
    return torch.stack(out), torch.tensor(taken, device=x.device, dtype=x.dtype)


def kl_divergence(log_q: torch.Tensor, log_p: torch.Tensor, direction: str) -> torch.Tensor:
    """Per-row ``KL(q || p)`` (``forward``) or ``KL(p || q)`` (``reverse``)."""
    if direction == "forward":
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    if direction == "reverse":
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    raise ConfigError(f"kl_direction={direction!r} is not one of {list(KL_DIRECTIONS)}")


def _per_image_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (t.dim() - 1))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Onto ``{x' : ||x' - x||_p <= eps} ∩ [0, 1]^d``.

    Clipping to [0, 1] after the ball projection never leaves the ball: each coordinate
    moves towards ``x``, which lies in the box.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_image_norm(delta)).clamp(max=1.0)
    return (x + delta).clamp(0, 1)


def _random_start(x, eps, norm, image_ids, seed):
    if norm == "linf":
        noise = rng.per_image(
            lambda g: torch.rand(x.shape[1:], generator=g) * 2 - 1, image_ids, seed,
            "pgd_start", x.device,
        ) * eps
    else:
        direction = rng.per_image(
            lambda g: torch.randn(x.shape[1:], generator=g), image_ids, seed, "pgd_start", x.device
        )
        noise = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps
    return project(x + noise.to(x.dtype), x, eps, norm)


def step_sizes(pgd_steps: int, eps: float, update: str, schedule: str,
               pgd_step_size: float | None) -> list[float]:
    """The step size of each iteration. Defaults: for a constant schedule ``2.5 eps / T``
    with sign steps (Madry et al. 2018: enough to cross the ball) and ``eps / 4`` with
    Adam (whose per-coordinate updates shrink as the gradient's sign flips); ``eps / 2``
    decaying to 0 for ``cosine`` (large early steps cross the ball, small late steps
    settle instead of oscillating between its faces; Loshchilov & Hutter 2017)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"pgd_schedule={schedule!r} is not one of {list(SCHEDULES)}")
    if update not in UPDATES:
        raise ConfigError(f"pgd_update={update!r} is not one of {list(UPDATES)}")
    steps = max(pgd_steps, 1)
    if schedule == "constant":
        default = 2.5 * eps / steps if update == "sign" else eps / 4
        size = default if pgd_step_size is None else pgd_step_size
        return [size] * pgd_steps
    size = eps / 2 if pgd_step_size is None else pgd_step_size
    return [size * 0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(pgd_steps)]


def _direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-descent direction of unit size in the ball's norm: the sign (L-inf),
    the normalised gradient (L2)."""
    return g.sign() if norm == "linf" else g / _per_image_norm(g)


def match_activations(
    model: torch.nn.Module,
    x: torch.Tensor,
    log_q: torch.Tensor,
    eps: float,
    norm: str = "linf",
    pgd_steps: int = 20,
    pgd_step_size: float | None = None,
    random_start: bool = False,
    kl_direction: str = "forward",
    image_ids: Sequence[str] = (),
    seed: int = 0,
    pgd_update: str = "sign",
    pgd_schedule: str = "constant",
    kl_tolerance: float | None = None,
    pgd_return: str = "best",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Projected descent on ``KL`` in the ball (:func:`ball_search`): returns the best
    iterate by KL (never the last merely because it is last; ``pgd_return="last"``: the
    last iterate, as the paper's Algorithm 1 does) and the search's diagnostics.

    ``kl_tolerance``: an image stops once its best KL is below it.
    Diagnostics: ``kl_start`` (KL at the start), ``kl`` (at the returned iterate),
    ``best_iteration`` (0 = the start), ``search_iterations`` (iterations run).
    """
    def kl_of(rows: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return kl_divergence(log_q[rows], F.log_softmax(logits, -1), kl_direction)

    best_x, search = ball_search(model, x, kl_of, eps, norm, pgd_steps, pgd_step_size,
                                 random_start, image_ids, seed, pgd_update, pgd_schedule,
                                 kl_tolerance, pgd_return)
    return best_x, {"kl_start": search["loss_start"], "kl": search["loss"],
                    "best_iteration": search["best_iteration"],
                    "search_iterations": search["search_iterations"]}


def class_log_prob(target: torch.Tensor):
    """A :func:`ball_search` objective: ``log p_c`` of each row's class ``target[rows]``
    (descending it is an untargeted attack: BIG's and the adversarial control's)."""
    def loss(rows: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits, -1).gather(1, target[rows, None])[:, 0]
    return loss


def ball_search(
    model: torch.nn.Module,
    x: torch.Tensor,
    loss_of,
    eps: float | torch.Tensor,
    norm: str = "linf",
    pgd_steps: int = 20,
    pgd_step_size: float | None = None,
    random_start: bool = False,
    image_ids: Sequence[str] = (),
    seed: int = 0,
    pgd_update: str = "sign",
    pgd_schedule: str = "constant",
    tolerance: float | None = None,
    pgd_return: str = "best",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Projected descent on ``loss_of(rows, logits)`` (a loss per row of the images
    ``rows``) over the ``eps``-ball around ``x`` inside [0, 1]: UNI's search, for any
    objective. ``eps``: one radius, or one per image (``(N,)``; the default step sizes
    then scale with each image's radius). Returns the best iterate by the loss (the last
    with ``pgd_return="last"``) and ``loss_start``, ``loss`` (at the returned iterate),
    ``best_iteration`` and ``search_iterations`` per image.

    ``pgd_update``: ``sign`` (signed gradient for L-inf, normalised gradient for L2) or
    ``adam`` (Kingma & Ba 2015's update ``m / sqrt(v)``, each coordinate within about
    +-1 like a sign step; normalised to unit length for L2); ``pgd_schedule``,
    ``pgd_step_size``: see :func:`step_sizes`; ``tolerance``: an image stops once its
    best loss is below it. Each image is searched on its own (one model call per image
    and iteration): batched kernels round differently, and signed or normalised steps
    amplify that, so a batched search would give an image another baseline in another
    batch (docs/robustness-of-the-harness.md, batch invariance).
    """
    ids = list(image_ids)
    parts = [
        _search_one(model, x[i : i + 1], lambda rows, logits, i=i: loss_of(rows + i, logits),
                    eps[i : i + 1] if isinstance(eps, torch.Tensor) else eps, norm, pgd_steps,
                    pgd_step_size, random_start, ids[i : i + 1], seed, pgd_update,
                    pgd_schedule, tolerance, pgd_return)
        for i in range(x.shape[0])
    ]
    return (torch.cat([found for found, _ in parts]),
            {k: torch.cat([search[k] for _, search in parts]) for k in parts[0][1]})


def _search_one(model, x, loss_of, eps, norm, pgd_steps, pgd_step_size, random_start,
                image_ids, seed, pgd_update, pgd_schedule, tolerance, pgd_return):
    """:func:`ball_search` on a batch at once (its callers pass one image)."""
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r} is not one of {list(NORMS)}")
    if pgd_return not in RETURNS:
        raise ConfigError(f"pgd_return={pgd_return!r} is not one of {list(RETURNS)}")
    last_only = pgd_return == "last"
    per_image = isinstance(eps, torch.Tensor)
    if per_image:  # unit-radius sizes, scaled per image (given sizes are absolute)
        radius = eps.to(x.device, x.dtype).view(-1, 1, 1, 1)
        sizes = step_sizes(pgd_steps, 1.0, pgd_update, pgd_schedule, pgd_step_size)
        size_scale = radius if pgd_step_size is None else torch.ones_like(radius)
    else:
        radius = eps
        sizes = step_sizes(pgd_steps, eps, pgd_update, pgd_schedule, pgd_step_size)
    tolerance = -math.inf if tolerance is None else float(tolerance)
    n = x.shape[0]
    x = x.detach()
    x_t = _random_start(x, radius, norm, image_ids, seed) if random_start else x.clone()
    best_x = x_t.clone()
    best_loss = None  # allocated in the objective's dtype
    best_iteration = torch.zeros(n, device=x.device)
    iterations = torch.zeros(n, device=x.device)
    loss_start = None
    moments = [torch.zeros_like(x), torch.zeros_like(x)] if pgd_update == "adam" else None
    active = torch.arange(n, device=x.device)
    for t in range(pgd_steps + 1):  # t = pgd_steps only scores the last iterate
        last = t == pgd_steps
        points = x_t[active].requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            loss = loss_of(active, model(points))
        if loss_start is None:
            loss_start = loss.detach().clone()
            best_loss = torch.full((n,), math.inf, device=x.device, dtype=loss.dtype)
        # "best" tracks the last iterate when the last is what is returned
        better = (torch.ones_like(loss, dtype=torch.bool) if last_only
                  else loss.detach() < best_loss[active])
        improved = active[better]
        best_loss[improved] = loss.detach()[better]
        best_x[improved] = x_t[improved]
        best_iteration[improved] = float(t)
        if last:
            break
        (g,) = torch.autograd.grad(loss.sum(), points)
        if moments is not None:  # Adam, bias-corrected, per coordinate
            m, v = moments
            m[active] = ADAM_BETAS[0] * m[active] + (1 - ADAM_BETAS[0]) * g
            v[active] = ADAM_BETAS[1] * v[active] + (1 - ADAM_BETAS[1]) * g * g
            m_hat = m[active] / (1 - ADAM_BETAS[0] ** (t + 1))
            v_hat = v[active] / (1 - ADAM_BETAS[1] ** (t + 1))
            update = m_hat / (v_hat.sqrt() + 1e-12)  # each coordinate within about +-1
            update = update if norm == "linf" else update / _per_image_norm(update)
        else:
            update = _direction(g, norm)
        size = sizes[t] * size_scale[active] if per_image else sizes[t]
        stepped = x_t[active] - size * update
        x_t[active] = project(stepped.detach(), x[active],
                              radius[active] if per_image else radius, norm)
        iterations[active] += 1
        active = active[best_loss[active] >= tolerance]
        if active.numel() == 0:
            break
    return best_x.detach(), {
        "loss_start": loss_start, "loss": best_loss, "best_iteration": best_iteration,
        "search_iterations": iterations,
    }


def boundary_fraction(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Per image: the fraction of coordinates of ``x - x'`` on the L-inf ball's faces
    (``|delta_i| >= 0.999 eps``), or for L2 whether ``||delta|| >= 0.999 eps`` (1 or 0)."""
    flat = delta.flatten(1).abs()
    if eps <= 0:
        return torch.zeros(flat.shape[0], device=delta.device)
    if norm == "linf":
        return (flat >= 0.999 * eps).float().mean(1)
    return (flat.norm(dim=1) >= 0.999 * eps).float()


def uni_baseline(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eta: float = 0.1,
    eps: float = 0.76078,
    norm: str = "l2",
    pgd_steps: int = 20,
    pgd_step_size: float | None = None,
    pgd_update: str = "adam",
    pgd_schedule: str = "constant",
    kl_tolerance: float | None = None,
    pgd_return: str = "best",
    random_start: bool = False,
    kl_direction: str = "forward",
    unlearn_step: str = "normalised",
    unlearn_steps: int = 1,
    unlearn_until: float | None = None,
    unlearn_mode: str = "auto",
    unlearn_chunk: int = 8,
    image_ids: Sequence[str] = (),
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Steps 1-2 of Algorithm 1: the baseline ``x'`` and its per-image diagnostics (the
    scores from one forward pass on ``[x, x']`` after the search)."""
    if eps < 0:
        raise ConfigError(f"eps={eps} must be >= 0")
    if pgd_steps < 0 or unlearn_steps < 1:
        raise ConfigError("pgd_steps must be >= 0 and unlearn_steps >= 1")
    if unlearn_until is not None and not 0 < unlearn_until <= 1:
        raise ConfigError(f"unlearn_until={unlearn_until} must be in (0, 1] or null")
    n = x.shape[0]
    ids = list(image_ids)
    # one image at a time (module docstring: batch invariance)
    parts = []
    for i in range(n):
        xi, ci = x[i : i + 1], target[i : i + 1]
        hat_logits, taken_i = unlearned_logits(
            model, xi, ci, eta, unlearn_steps, unlearn_mode, unlearn_chunk, unlearn_step,
            unlearn_until,
        )
        if not torch.isfinite(hat_logits).all():  # the search would stay at x: a zero map
            raise RunError(
                f"UNI's unlearning diverged on image {ids[i] if ids else i}: non-finite logits "
                f"after {int(taken_i[0])} {unlearn_step} step(s) of eta={eta:g}; use "
                "unlearn_step=normalised, a smaller eta or fewer unlearn_steps")
        log_q_i = F.log_softmax(hat_logits, -1)
        x_base_i, search_i = match_activations(
            model, xi, log_q_i, eps, norm, pgd_steps, pgd_step_size, random_start,
            kl_direction, ids[i : i + 1], seed, pgd_update,
            pgd_schedule, kl_tolerance, pgd_return,
        )
        parts.append((log_q_i, taken_i, x_base_i, search_i))
    log_q = torch.cat([p[0] for p in parts])
    taken = torch.cat([p[1] for p in parts])
    x_base = torch.cat([p[2] for p in parts])
    search = {k: torch.cat([p[3][k] for p in parts]) for k in parts[0][3]}
    with torch.no_grad():
        logits = model(torch.cat([x, x_base]))
    log_p = F.log_softmax(logits, -1)
    rows = torch.arange(n, device=x.device)
    delta = x - x_base
    flat = delta.flatten(1)
    diagnostics = {
        "p_c_input": log_p[:n][rows, target].exp(),
        "p_c_unlearned": log_q.exp()[rows, target],
        "p_c_baseline": log_p[n:][rows, target].exp(),
        "unlearn_steps_taken": taken,
        "dist_linf": flat.abs().amax(1),
        "dist_l2": flat.norm(dim=1),
        "boundary_fraction": boundary_fraction(delta, eps, norm),
        **{k: v for k, v in search.items() if k != "kl"},
        "kl": kl_divergence(log_q, log_p[n:], kl_direction),
    }
    return x_base, diagnostics


def uni_baselines(
    model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, *,
    image_ids: Sequence[str] = (), seed: int = 0, **options,
) -> tuple[torch.Tensor, int]:
    """UNI's baseline without its path integral, as ``(baselines, draws)`` (one draw)."""
    baseline, _ = uni_baseline(model, x, target, image_ids=image_ids, seed=seed, **options)
    return baseline.detach(), 1


def uni(
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
):
    """UNI attributions: IG from the unlearned baseline (step 3 of Algorithm 1);
    ``idgi``: IDGI's projection of the path's gradients."""
    baseline, diagnostics = uni_baseline(
        model, x, target, image_ids=image_ids, seed=seed, **options
    )
    # with output=prob the path's end points are already scored
    ends = (diagnostics["p_c_baseline"], diagnostics["p_c_input"]) if output == "prob" else None
    result = integrated_gradients(
        model, x, baseline, target, steps, rule, output, internal_batch_size, end_scores=ends,
        idgi=idgi,
    )
    result.diagnostics.update(diagnostics)
    return result


register_options(
    eta=bounded(0, low_open=True), eps=bounded(0), norm=one_of(NORMS), pgd_steps=bounded(0),
    pgd_step_size=bounded(0, low_open=True), pgd_update=one_of(UPDATES),
    pgd_schedule=one_of(SCHEDULES), kl_tolerance=bounded(0), kl_direction=one_of(KL_DIRECTIONS),
    unlearn_step=one_of(UNLEARN_STEPS), unlearn_steps=bounded(1),
    unlearn_until=bounded(0, 1, low_open=True), unlearn_mode=one_of(UNLEARN_MODES),
    unlearn_chunk=bounded(1), pgd_return=one_of(RETURNS),
)
register_method("uni_paper", functools.partial(uni, **PAPER), catalog=CATALOG,
                restart_options={"random_start": True},
                baselines=functools.partial(uni_baselines, **PAPER), straight_line=not_idgi,
                option_functions=(uni_baseline,))
register_method("uni", uni, catalog=CATALOG, restart_options={"random_start": True},
                baselines=uni_baselines, straight_line=not_idgi,
                option_functions=(uni_baseline,), version=2)

"""Where a run's time goes: seconds per stage and the model passes it makes.

:class:`StageClock` adds up wall time per stage (``explain/<method>``,
``metric/<entry>``, ``io``); :class:`PassLog` records every call of a model (and of
copies made of it while it is attached, such as the robustness attack's smooth
surrogate): which model, its input shape and whether gradients were on.
:func:`replay_seconds` makes the same calls on those models alone (random inputs of the
logged shapes, one backward to the input after each gradient-enabled call): the floor a
run's time is compared with (``benchmarks/experiments.py``); ``uni.run --plan`` reports
the passes per image.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch._C import _functorch as functorch


@dataclass
class StageCost:
    """One (method, stage)'s wall seconds, the process's CPU seconds (immune to a shared
    or paused machine; on a GPU, host time only), the images it handled and the model rows
    it passed (without and with an input gradient)."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    images: int = 0
    forward_rows: int = 0
    gradient_rows: int = 0


@dataclass
class StageClock:
    """Wall seconds per stage name, accumulated over :meth:`stage` blocks; per (method,
    stage) also the images and, with a :class:`PassLog` in ``passes``, the model rows
    (``costs``). On CUDA a stage ends after its queued work (a synchronisation), so its
    seconds are its own."""

    seconds: dict[str, float] = field(default_factory=dict)
    costs: dict[tuple[str, str], StageCost] = field(default_factory=dict)
    passes: PassLog | None = None

    @contextmanager
    def stage(self, name: str, method: str = "", images: int = 0):
        rows = list(self.passes.totals) if self.passes is not None else [0, 0]
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            cost = self.costs.setdefault((method, name), StageCost())
            cost.seconds += elapsed
            cost.cpu_seconds += time.process_time() - cpu_start
            cost.images += images
            if self.passes is not None:
                cost.forward_rows += self.passes.totals[0] - rows[0]
                cost.gradient_rows += self.passes.totals[1] - rows[1]

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


@dataclass
class PassLog:
    """Every call of the attached model: ``(model, input shape, gradients on)`` and how
    often (``calls`` keys hold ``id(model)``; ``models`` the models, kept for replay).

    Attach with :meth:`attach` (a forward pre-hook on the model, kept by copies of it made
    meanwhile, e.g. :func:`uni.models.smooth_surrogate`, whose calls are logged as their
    own model); :meth:`detach` removes it from the model and stops copies logging.
    Calls inside ``torch.func`` transforms (UNI's per-image unlearned models under
    ``vmap``) are logged with their per-sample shape. ``backwards``: per ``(model, input
    shape)``, the backward passes that reached a gradient-enabled call's output (AGI takes
    two input gradients from each forward pass; not counted inside ``torch.func``
    transforms). ``totals``: rows so far without and with gradients. ``replay=False`` (a
    whole run): only the totals are kept, neither the models (copies made per batch would
    stay alive) nor the calls."""

    calls: Counter = field(default_factory=Counter)
    backwards: Counter = field(default_factory=Counter)
    models: dict[int, nn.Module] = field(default_factory=dict)
    logging: list = field(default_factory=lambda: [False])  # shared with the hook
    totals: list = field(default_factory=lambda: [0, 0])  # rows: forward, with gradient
    replay: bool = True

    def attach(self, model: nn.Module) -> PassLog:
        calls, models, logging, totals = self.calls, self.models, self.logging, self.totals
        backwards, replay = self.backwards, self.replay
        logging[0] = True

        # a plain closure, not a bound method: deepcopy of the model shares it
        def log(module, args):
            x = args[0] if args else None
            if logging[0] and isinstance(x, torch.Tensor):
                grad = torch.is_grad_enabled()
                totals[grad] += x.shape[0] if x.dim() == 4 else 1
                if replay:
                    models.setdefault(id(module), module)
                    calls[(id(module), tuple(x.shape), grad)] += 1

        def count_backwards(module, args, out):
            if not (logging[0] and isinstance(out, torch.Tensor)
                    and out.requires_grad) or functorch.is_functorch_wrapped_tensor(out):
                return
            key = (id(module), tuple(args[0].shape))
            out.register_hook(lambda grad: backwards.update((key,)))

        # the model as run and as trained: UNI's unlearning steps call the latter
        # (uni.models.set_runtime keeps it as ``trained``); backward passes are counted
        # for the replay only, so a whole run's calls carry no output hook
        modules = dict.fromkeys([model, getattr(model, "trained", model)])
        self._handles = [m.register_forward_pre_hook(log) for m in modules]
        if replay:
            self._handles += [m.register_forward_hook(count_backwards) for m in modules]
        return self

    def detach(self) -> None:
        self.logging[0] = False
        for handle in self._handles:
            handle.remove()

    def rows(self, grad: bool | None = None) -> int:
        """Images passed through the model (``grad``: only calls with gradients on or
        off)."""
        return sum((shape[0] if len(shape) == 4 else 1) * n
                   for (_, shape, on), n in self.calls.items() if grad is None or on == grad)


def replay_seconds(log: PassLog, repeats: int = 1) -> float:
    """Wall seconds of the logged calls on their models alone: random inputs of the
    logged shapes, and for gradient-enabled calls one backward of the outputs' sum to the
    input (what computing an input gradient costs at that batch size), or as many as
    reached those calls' outputs (``PassLog.backwards``, spread over the calls)."""
    generator = torch.Generator().manual_seed(0)
    total = 0.0
    for (key, shape, grad), n in list(log.calls.items()):
        model = log.models[key]
        device = next(model.parameters()).device
        extra = max(0, log.backwards[(key, shape)] - n) if grad else 0
        if len(shape) == 3:
            shape = (1, *shape)
        x = torch.rand(shape, generator=generator).to(device)
        for call in range(n * repeats):
            # this call's backward passes: one, plus its share of the extra ones
            passes = 1 + extra // n + (call % n < extra % n)
            start = time.perf_counter()
            with torch.set_grad_enabled(grad):
                if grad:
                    x.requires_grad_(True)
                out = model(x)
                for i in range(passes if grad else 0):
                    torch.autograd.grad(out.sum(), x, retain_graph=i < passes - 1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            total += time.perf_counter() - start
    return total / repeats

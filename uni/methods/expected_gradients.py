"""Expected Gradients (Erion, Janizek, Sturmfels, Lundberg & Lee 2021, "Improving
performance of deep learning models with axiomatic attribution priors and expected
gradients", Nature Machine Intelligence): IG averaged over baselines drawn from the data,

``A = E_{x' ~ D, alpha ~ U(0, 1)} [(x - x') * dF_c/dx (x' + alpha (x - x'))]``.

Per image, ``samples`` baselines are drawn from a reference set with a generator keyed on
``(seed, image_id)`` (docs/design.md §5), with replacement, never the image itself. Two estimators:

- ``points: riemann`` (default): the straight line from each baseline is integrated with
  ``steps`` points of the Riemann ``rule``, and the ``samples`` IG maps are averaged
  (``samples x steps`` gradients);
- ``points: random``: one point per baseline at ``alpha ~ U(0, 1)`` from the same keyed
  generator (Erion et al.'s estimator, and Captum's ``GradientShap`` with ``stdevs=0``;
  ``samples`` gradients, ``steps`` and ``rule`` unused).

The reference set (``reference``):

- ``"split"`` (the command line default): the run's data split, all of it (``data.start``,
  ``data.limit`` and shards ignored; ``reference_size``: only its first images). The
  run replaces ``"split"`` with a :class:`ReferenceSet` of that split
  (:func:`with_reference_split`); images are loaded when drawn. An id
  ``<base>|<corruption>/<severity>`` (ImageNet-C made on the fly) is "the image itself"
  for every corruption of ``<base>``.
- a tensor ``(R, C, H, W)`` of images (library use): rows with the image's pixels are
  excluded.
- ``"batch"`` (the library default when nothing else is given): the other images of the
  batch being explained. Then an image's draws depend on its batch, unlike everything
  else in the harness: the same image alone has nothing to draw from (an error), and in
  another batch gets other baselines. Use a tensor or the split for reproducible records.

Completeness holds in expectation, ``E[sum A] = F_c(x) - E[F_c(x')]``: the diagnostics
compare ``sum A`` with ``F_c(x)`` minus the mean ``F_c`` of the drawn baselines.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from uni import rng
from uni.contract import bounded, one_of
from uni.errors import ConfigError
from uni.methods._registry import register_method, register_options
from uni.methods.idgi import IDGIAccumulator
from uni.methods.path import (
    Attribution,
    path_diagnostics,
    path_gradients,
    riemann_rule,
)
from uni.models import class_score

CATALOG = [{"name": "expected_gradients", "order": 50}]  # read by uni.catalog

SAMPLES = 8
POINTS = ("riemann", "random")
SELECTION = ("start", "limit", "shard", "num_shards", "batch_size", "num_workers")


def group_of(image_id: str) -> str:
    """The photo an id shows: ``<base>`` for ``<base>|<corruption>/<severity>``."""
    return image_id.split("|", 1)[0]


class ReferenceSet:
    """Images baselines are drawn from: their ids (``groups``: the photo each shows) and a
    loader. Built from a tensor (:meth:`from_tensor`) or a data config
    (:meth:`from_data`)."""

    def __init__(self, ids: Sequence[str], load, by_content: bool = False):
        self.ids = list(ids)
        self.by_content = by_content  # ids are pixel hashes (a tensor), else dataset ids
        self.groups = self.ids if by_content else [group_of(i) for i in self.ids]
        self._load = load

    def keys(self, x: torch.Tensor, image_ids: Sequence[str]) -> list[str]:
        """What marks a reference image as "the image itself" for each image of ``x``:
        its pixels (tensor references) or the photo its id names (a data split)."""
        return rng.content_ids(x) if self.by_content else [group_of(i) for i in image_ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:  # short, for logs and error messages
        return f"ReferenceSet({len(self)} images)"

    @classmethod
    def from_tensor(cls, images: torch.Tensor) -> ReferenceSet:
        images = images.detach()
        ids = rng.content_ids(images)
        return cls(ids, lambda index: images[index], by_content=True)

    @classmethod
    def from_data(cls, data: dict, data_config: dict, reference_size: int | None = None):
        """The split ``data`` (a ``conf/data`` mapping) describes, from its first image
        (``data.start``, ``data.limit`` and shards ignored; ``reference_size``: keep that
        many), preprocessed for the model (``data_config``)."""
        from uni.data import build_dataset

        options = {k: v for k, v in dict(data).items() if k not in SELECTION}
        if options.get("name") == "hf" and options.get("streaming", True) \
                and reference_size is None:
            raise ConfigError("expected_gradients: reference=split on a streamed data=hf "
                              "split needs reference_size (a stream is read in full)")
        dataset = build_dataset(options.pop("name"), data_config, limit=reference_size,
                                **options)
        ids = [item[0] for item in dataset.items]

        @functools.lru_cache(maxsize=64)
        def image(index: int) -> torch.Tensor | None:
            return dataset[index].image

        def load(index: torch.Tensor) -> torch.Tensor:
            return torch.stack([_readable(image, int(i), len(ids)) for i in index.tolist()])

        return cls(ids, load)


def with_reference_split(options: dict, data: dict, data_config: dict) -> dict:
    """``options`` with ``reference: split`` replaced by a :class:`ReferenceSet` of the
    run's data split ``data`` (a ``conf/data`` mapping; ``data_config``: the model's
    preprocessing): every image of it (``data.start``, ``data.limit`` and shards ignored;
    the option ``reference_size``: its first images), so an image's baselines do not
    depend on the run's selection or batches. The config (and the records' key) keep the
    string (:attr:`MethodSpec.split_options <uni.methods.MethodSpec>`)."""
    if options.get("reference") != "split":
        return options
    size = options.get("reference_size")
    return {**options, "reference": ReferenceSet.from_data(data, data_config, size)}


def _readable(image, index: int, size: int) -> torch.Tensor:
    """The image at ``index``, or the next readable one (in split order) if it cannot be
    read: deterministic, whatever else was drawn before."""
    for offset in range(size):
        value = image((index + offset) % size)
        if value is not None:
            return value
    raise ConfigError("expected_gradients: no image of the reference split can be read")


def resolve_reference(reference, x: torch.Tensor) -> ReferenceSet | None:
    """A :class:`ReferenceSet`, or ``None`` for ``"batch"``."""
    if isinstance(reference, ReferenceSet):
        return reference
    if isinstance(reference, torch.Tensor):
        if reference.dim() != 4 or reference.shape[1:] != x.shape[1:]:
            raise ConfigError(f"expected_gradients: reference images of shape "
                              f"{tuple(reference.shape)} for inputs {tuple(x.shape)}")
        return ReferenceSet.from_tensor(reference.to(x.device, x.dtype))
    if reference == "batch":
        return None
    if reference == "split":
        raise ConfigError("expected_gradients: reference='split' is the run's data split; "
                          "the runner resolves it (in Python, pass a tensor of images)")
    raise ConfigError(f"expected_gradients: reference={reference!r} is not 'split', "
                      "'batch', a tensor of images or a ReferenceSet")


def draw(
    x: torch.Tensor,
    image_ids: Sequence[str],
    seed: int,
    samples: int,
    reference="batch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The baselines ``(samples * N, C, H, W)``, draw-major (draw ``d`` of image ``i`` at
    row ``d N + i``, as :func:`uni.methods.ig.ig` stacks noise draws), and a ``U(0, 1)``
    position per row (used by ``points: random``), both keyed on ``(seed, image_id)``."""
    if samples < 1:
        raise ConfigError(f"expected_gradients: samples={samples} must be a positive integer")
    n = x.shape[0]
    references = resolve_reference(reference, x)
    if references is None:  # the other images of the batch: not the same pixels or photo
        pixels, groups = rng.content_ids(x), [group_of(i) for i in image_ids]
        references = ReferenceSet(pixels, lambda index: x.detach()[index], by_content=True)
        excluded = [{j for j in range(n) if pixels[j] == pixels[i] or groups[j] == groups[i]}
                    for i in range(n)]
    else:
        own = references.keys(x, image_ids)
        excluded = [{j for j, g in enumerate(references.groups) if g == own[i]}
                    for i in range(n)]
    indices, alphas = [], []
    for i, image_id in enumerate(image_ids):
        candidates = [j for j in range(len(references)) if j not in excluded[i]]
        if not candidates:
            where = "the batch" if reference == "batch" else repr(references)
            raise ConfigError(f"expected_gradients: image {image_id!r} has no other image "
                              f"in {where} to draw baselines from (pass reference=<a tensor "
                              "of images> in Python, or reference=split in a run)")
        generator = rng.torch_generator(seed, image_id, "expected_gradients")
        pick = torch.randint(len(candidates), (samples,), generator=generator)
        indices.append(torch.tensor(candidates)[pick])
        alphas.append(torch.rand(samples, generator=generator, dtype=torch.float64))
    index = torch.stack(indices, dim=1).flatten()  # (samples, N) -> draw-major
    baselines = references._load(index).to(x.device, x.dtype)
    return baselines, torch.stack(alphas, dim=1).flatten().to(x.device)


def expected_gradients_from(
    model: torch.nn.Module,
    x: torch.Tensor,
    baselines: torch.Tensor,
    target: torch.Tensor,
    alphas: torch.Tensor | None = None,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    idgi: bool = False,
) -> Attribution:
    """Expected Gradients from given baselines ``(samples * N, ...)`` (draw-major):
    ``alphas`` ``(samples * N,)`` puts one point on each line (``points: random``); without
    it every line gets ``steps`` points of ``rule``. Attributions are the mean over draws.
    ``idgi``: IDGI's projection of each line's gradients (``points: riemann`` only).
    """
    n = x.shape[0]
    if baselines.shape[0] % n or baselines.shape[1:] != x.shape[1:]:
        raise ConfigError(f"expected_gradients: {tuple(baselines.shape)} baselines for a "
                          f"batch {tuple(x.shape)}")
    draws = baselines.shape[0] // n
    xs, targets = x.repeat(draws, 1, 1, 1), target.repeat(draws)
    delta = xs - baselines
    if alphas is None:
        positions, weights = riemann_rule(steps, rule)
        positions = positions.to(x.device, x.dtype)

        def points_of(i, k):
            return baselines[i] + positions[k].view(-1, 1, 1, 1) * delta[i]
    else:
        positions = alphas.to(x.device, x.dtype)
        weights = torch.ones(1, dtype=torch.float64)

        def points_of(i, k):
            return baselines[i] + positions[i].view(-1, 1, 1, 1) * delta[i]

    if idgi and alphas is not None:
        raise ConfigError("expected_gradients: idgi needs points=riemann (IDGI projects "
                          "each line's steps; points=random has one point per line)")
    accumulator = IDGIAccumulator(xs.shape[0], steps) if idgi else None
    grad_sum, scores = path_gradients(
        model, points_of, xs.shape[0], targets, positions if alphas is None else weights,
        weights.to(x.dtype), output, internal_batch_size,
        on_rows=accumulator.add if idgi else None,
    )
    ends = torch.cat([baselines, x]).detach()
    with torch.no_grad():
        chunk = max(1, int(internal_batch_size))
        ends = torch.cat([
            class_score(model(ends[s : s + chunk]), torch.cat([targets, target])[s : s + chunk],
                        output).float()
            for s in range(0, ends.shape[0], chunk)
        ])
    if idgi:
        per_line = accumulator.result(ends[: xs.shape[0]], ends[xs.shape[0]:].repeat(draws))
    else:
        per_line = delta * grad_sum.to(x.dtype)
    attributions = per_line.to(x.dtype).view(draws, *x.shape).mean(0)
    score_baseline = ends[: xs.shape[0]].view(draws, n).mean(0)
    score_input = ends[xs.shape[0]:]
    scores = scores.view(draws, n, -1)
    if alphas is None:  # F_c at each path position, averaged over the draws
        along = scores.mean(0)
    else:  # the draws' points, ordered by their position on their line
        order = positions.view(draws, n).argsort(dim=0)
        along = scores[:, :, 0].gather(0, order).T
    diagnostics = path_diagnostics(attributions, score_baseline, score_input, along)
    path_scores = torch.cat([score_baseline[:, None], along, score_input[:, None]], dim=1)
    return Attribution(attributions, baselines[:n].detach(), diagnostics, path_scores)


def expected_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    samples: int = SAMPLES,
    points: str = "riemann",
    reference="batch",
    reference_size: int | None = None,
    steps: int = 32,
    rule: str = "right",
    output: str = "prob",
    internal_batch_size: int = 4,
    image_ids: Sequence[str] = (),
    seed: int = 0,
    idgi: bool = False,
) -> Attribution:
    """Expected Gradients for a batch (module docstring). The baselines returned are the
    first draw of each image; :func:`draw` gives all of them. ``reference_size`` is
    applied where the split is loaded (the runner)."""
    if points not in POINTS:
        raise ConfigError(f"expected_gradients: points={points!r} is not one of {list(POINTS)}")
    image_ids = list(image_ids) if image_ids else rng.content_ids(x)
    baselines, alphas = draw(x, image_ids, seed, int(samples), reference)
    return expected_gradients_from(
        model, x, baselines, target, alphas if points == "random" else None, steps, rule,
        output, internal_batch_size, idgi,
    )


def method_baselines(model, x, target, *, image_ids, seed, samples: int = SAMPLES,
                     reference="batch", **_) -> tuple[torch.Tensor, int]:
    """All drawn baselines ``(samples * N, ...)`` and ``samples``, for the metrics that
    integrate along the method's straight lines (``points: riemann``)."""
    baselines, _ = draw(x, list(image_ids), seed, int(samples), reference)
    return baselines.detach(), int(samples)


def is_straight_line(options: dict) -> bool:
    """A Riemann sum along straight lines from the drawn baselines with ``points:
    riemann``; random positions (``points: random``) are not one, nor is IDGI's
    projection of the sum."""
    return options.get("points", "riemann") == "riemann" and not options.get("idgi", False)

register_options(points=one_of(POINTS), reference_size=bounded(1))
# straight lines from baselines drawn from data (with points=riemann)
register_method("expected_gradients", expected_gradients, catalog=CATALOG, random=True,
                straight_line=is_straight_line, baselines=method_baselines,
                split_options=with_reference_split)

"""The experiment registry: one :class:`Experiment` per experiment, registered by the file
that defines it (``uni/experiments/<name>.py``, beside ``conf/experiment/<name>.yaml``).

Torch-free: a spec names what the report does with the experiment's records; the run
itself is the YAML's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from uni.errors import ConfigError


@dataclass(frozen=True)
class Experiment:
    """How the report reads one experiment's runs.

    ``name``: the experiment's YAML name; its runs sit under a results directory in
    ``<name>/`` and ``<name>-<suffix>/`` (``make reproduce MODEL=...`` adds the model).
    ``title``: what it measures, in one line (the heading of its generic section).
    ``order``: where its section stands in REPORT.md (ascending; its Claims rows too).
    ``section``: the REPORT lines of its runs (``## `` headings included), from a
    :class:`uni.analysis.sections.Context`; ``None``: the generic section of a run.
    ``claims``: the paper's claims its merged records can check
    (:class:`uni.analysis.claims.Claim` list); ``None``: it checks none.
    ``pooled``: the report loads its runs and hands their merged records to ``section``
    and ``claims``; ``False``: a study with its own layout (a sweep of settings) whose
    section reads its directory itself.
    ``joins``: another experiment whose section and claims take this one's runs too
    (a sweep of the same measurement).
    ``reproduce``: one of the paper's experiments that ``make reproduce`` runs; the
    Claims table says so when it has no records.
    """

    name: str
    title: str
    order: int
    section: Callable | None = None
    claims: Callable | None = None
    pooled: bool = True
    joins: str | None = None
    reproduce: bool = False


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(spec: Experiment) -> Experiment:
    """Add ``spec`` to :data:`EXPERIMENTS` (a name registered twice is an error: two
    files would claim one experiment)."""
    if spec.name in EXPERIMENTS:
        raise ConfigError(f"experiment {spec.name!r} is registered twice")
    EXPERIMENTS[spec.name] = spec
    return spec


def experiment_of(directory: str) -> Experiment | None:
    """The registered experiment a run directory's name belongs to (``<name>`` or
    ``<name>-<suffix>``; the longest such name), followed to the experiment it joins;
    ``None`` for an unregistered one."""
    matches = [spec for spec in EXPERIMENTS.values()
               if directory == spec.name or directory.startswith(f"{spec.name}-")]
    if not matches:
        return None
    spec = max(matches, key=lambda s: len(s.name))
    return EXPERIMENTS[spec.joins] if spec.joins else spec


def in_report_order() -> list[Experiment]:
    return sorted(EXPERIMENTS.values(), key=lambda spec: (spec.order, spec.name))

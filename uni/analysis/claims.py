"""The claims of the paper, checked on records (docs/design.md §4): REPORT.md's opening Claims
table and the paired-statistics blocks of its sections, both computed by
:mod:`uni.analysis.stats`.

A claim is "UNI is better than every comparison method on a metric", one per metric,
model and (for ImageNet-C) corruption family; each experiment's spec says which claims its
records check (:attr:`uni.experiments.Experiment.claims`); the verdict is
:func:`uni.analysis.stats.verdict`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from uni.analysis.floors import COLUMN as FLOOR_COLUMN
from uni.analysis.floors import floor_verdict, without_floors
from uni.analysis.stats import (
    VERDICTS,
    cd_figure,
    deciding_comparison,
    friedman_posthoc,
    holm,
    paired_differences,
    verdict,
    verdict_rule,
)
from uni.catalog import lower_is_better, not_rivals
from uni.records import saved_config

REFERENCE = "uni"
ATTACK_SCORE = re.compile(r"^robustness_(?!.*noise_floor)(\w+)_(spearman|intersection)$")
Runs = Sequence[tuple[Path, pd.DataFrame]]  # an experiment's run directories and records


def attack_budgets(scores: Sequence[str]) -> dict[str, list[str]]:
    """Robustness score names by budget (``""``: the default budget's plain names;
    ``linf4``, ``l2_0p76078``: a sweep's, :func:`uni.metrics.robustness.budget_name`)."""
    grouped: dict[str, list[str]] = {}
    for name in scores:
        label = ATTACK_SCORE.match(name)[1]
        grouped.setdefault(label.split("_", 1)[1] if "_" in label else "", []).append(name)
    return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class Claim:
    text: str
    metric: str  # a metric of ``records`` (unit: model x image_id)
    records: pd.DataFrame
    config_keys: tuple[str, ...]  # options that matter, dotted keys of the run's config


def diagnostic_records(records: pd.DataFrame, column: str) -> pd.DataFrame:
    """A per-image diagnostic column (e.g. ``monotonicity``, repeated on every metric row
    of an image and method) as records of a metric named ``column``; a method without
    it (DeepLIFT has no path) has no rows."""
    if column not in records:
        return records.iloc[:0]
    values = records.groupby(["model", "image_id", "method"])[column].first().dropna()
    return values.rename("value").reset_index().assign(metric=column)


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_options(run_dir: Path, keys: Sequence[str]) -> str:
    """``key=value`` for each of ``keys`` (a group: each of its options but ``metric``)
    and the explained output, from each config the run directory saved (``configs/``, one
    per config run into it; joined by `` / ``), else from its ``.hydra/config.yaml``;
    "unknown" without one."""
    configs = ([OmegaConf.load(p) for p in sorted((run_dir / "configs").glob("*.yaml"))]
               or [c for c in [saved_config(run_dir)] if c is not None])
    if not configs:
        return "unknown"
    return " / ".join(dict.fromkeys(_config_options(c, keys) for c in configs))


def _config_options(config: DictConfig, keys: Sequence[str]) -> str:
    options = {}
    for key in (*keys, "output"):
        value = OmegaConf.select(config, key)
        if isinstance(value, DictConfig):
            group = OmegaConf.to_container(value, resolve=True)
            options.update({k: v for k, v in group.items() if k != "metric"})
        elif value is not None:
            options[key.rsplit(".", 1)[-1]] = value
    return " ".join(f"{k}={_format(v)}" for k, v in options.items())


def protocol(experiment: str, runs: Runs, model: str, claim: Claim) -> str:
    """The experiment, the runs holding ``model`` and their options for ``claim``."""
    holding = [run_dir for run_dir, records in runs if model in set(records["model"])]
    options = " / ".join(dict.fromkeys(run_options(d, claim.config_keys) for d in holding))
    return f"{experiment} (`{'`, `'.join(d.name for d in holding)}`): {options}"


def strongest_effect(differences: pd.DataFrame, metric: str) -> str:
    """UNI minus the strongest competitor (the method whose paired mean difference is
    best against UNI), with the interval."""
    compared = differences[differences["n"] > 0]
    if compared.empty:
        return "-"
    lower = lower_is_better(metric)
    best = compared.loc[compared["mean"].idxmin() if lower else compared["mean"].idxmax()]
    return (f"{-best['mean'] + 0.0:+.3f} [{-best['high'] + 0.0:+.3f}, "
            f"{-best['low'] + 0.0:+.3f}] vs {best['method']}"
            + (" (lower is better)" if lower else ""))


DECIDING = "deciding Holm p"
ACROSS = "p, Holm across claims"
EXACT_P = "_deciding_p"  # the deciding p unrounded, for the correction across claims


def judged(differences: pd.DataFrame, metric: str) -> dict:
    """The Claims table's judgement of "UNI is best on ``metric``" from its paired
    differences (:func:`uni.analysis.stats.paired_differences`): n, effect, the deciding
    comparison's Holm p and method (:func:`uni.analysis.stats.deciding_comparison`), verdict."""
    method, p = deciding_comparison(differences, metric)
    return {
        "n": int(differences["n"].min()) if len(differences) else 0,
        "effect (UNI - strongest)": strongest_effect(differences, metric),
        DECIDING: "-" if pd.isna(p) else f"{p:.2g} ({method})",
        "verdict": verdict(differences, metric),
        EXACT_P: p,
    }


def across_claims(table: pd.DataFrame) -> pd.Series:
    """Each claim's deciding p (:data:`EXACT_P`, unrounded) Holm-corrected across every
    claim of ``table`` (claims without a test stay ``-``)."""
    corrected = holm(pd.to_numeric(table[EXACT_P], errors="coerce").to_numpy(float))
    return pd.Series(["-" if pd.isna(c) else f"{c:.2g}" for c in corrected], index=table.index)


def claim_row(claim: Claim, model: str, protocol_text: str) -> dict:
    """One line of the Claims table: judged on the attribution methods (not UNI's own
    variants and controls); where the records hold trivial maps, a column says which beat
    UNI or the strongest competitor."""
    records = claim.records[(claim.records["model"] == model)
                            & ~claim.records["method"].isin(not_rivals())]
    differences = paired_differences(without_floors(records), claim.metric, REFERENCE)
    row = {"claim": claim.text, "model": model, "protocol": protocol_text,
           **judged(differences, claim.metric)}
    floors = floor_verdict(records, claim.metric, REFERENCE)
    return {**row, FLOOR_COLUMN: floors} if floors != "-" else row


GRID_COLUMN = "verdicts under the protocol grid"
NOT_RUN = ": not run"  # the claim of an experiment without records


def claims_table(loaded: dict[str, tuple[pd.DataFrame, Runs]], experiments: Sequence,
                 grid: dict[tuple[str, str], str] | None = None):
    """One row per claim and model, for each of ``experiments`` (registered specs,
    :class:`uni.experiments.Experiment`, in order: each says which claims its records
    check); ``loaded`` maps an experiment that was run to its records (every run merged)
    and its runs. An experiment not run is one ``inconclusive`` row saying so.
    ``grid``: (model, metric) -> the same claim's verdicts across the protocol grid
    (:func:`uni.analysis.protocol_sensitivity.verdict_tallies`), a column when given."""
    rows = []
    for spec in experiments:
        experiment = spec.name
        if experiment not in loaded:
            rows.append({"claim": f"{experiment}{NOT_RUN}", "model": "-", "protocol": "-",
                         "n": 0, "effect (UNI - strongest)": "-", DECIDING: "-",
                         "verdict": "inconclusive", EXACT_P: float("nan")})
            continue
        records, runs = loaded[experiment]
        for claim in spec.claims(records):
            for model in sorted(records["model"].dropna().unique()):
                rows.append(claim_row(claim, model, protocol(experiment, runs, model, claim)))
                if grid:
                    rows[-1][GRID_COLUMN] = grid.get((model, claim.metric), "-")
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(table.columns.get_loc(DECIDING) + 1, ACROSS, across_claims(table))
        table = table.drop(columns=EXACT_P)
    return table.fillna({c: "-" for c in (GRID_COLUMN, FLOOR_COLUMN) if c in table})


def claims_section(loaded: dict[str, tuple[pd.DataFrame, Runs]], experiments: Sequence,
                   grid: dict[tuple[str, str], str] | None = None):
    """The Claims section of REPORT.md (markdown lines); arguments as :func:`claims_table`."""
    table = claims_table(loaded, experiments, grid)
    # each protocol by a short name in the table (P1, P2, ...), in full in a legend below
    names = {text: f"P{i}" for i, text in enumerate(
        dict.fromkeys(t for t in table["protocol"] if t != "-"), start=1)}
    table["protocol"] = table["protocol"].map(lambda text: names.get(text, text))
    legend = ["Protocols (the experiment, its runs and the options the claim depends on):",
              "", *(f"- {name}: {text}" for text, name in names.items())] if names else []
    not_run = table["claim"].str.endswith(NOT_RUN)
    counts = table.loc[~not_run, "verdict"].value_counts()
    tally = ", ".join([*(f"{counts.get(v, 0)} {v}" for v in VERDICTS),
                       *([f"{int(not_run.sum())} not run"] if not_run.any() else [])])
    tested = int((table[ACROSS] != "-").sum()) if ACROSS in table else 0
    return [
        "## Claims", "",
        f"Each claim of the paper, checked on the records below ({tally}). {verdict_rule()}",
        "",
        "n: paired images (the fewest over the methods compared; ImageNet-C: base images, "
        "each the mean over its family's corruptions and severities). Effect: UNI minus "
        "the strongest competitor (the method whose mean paired difference to UNI is best "
        "for it), mean [95% bootstrap interval]. Deciding Holm p: on a fails row the method "
        "significantly better than UNI (the smallest Holm p among those), otherwise the "
        "weakest comparison (the largest Holm p), named. "
        f"{_sentence(ACROSS)}: that p Holm-corrected across the {tested} claims of this "
        "report that have a test (the others read -); a verdict whose corrected p is not "
        "below 0.05 does not survive the correction across claims. Friedman tests, "
        "per-method paired differences and critical-difference diagrams are in each section "
        "(their Holm correction is over that section's methods, UNI's own variants and "
        "controls included, so their p can differ from the Claims'). UNI's own variants "
        "(uni_paper, uni_idgi) and its controls are not rivals: section What drives UNI "
        "compares them."
        + (
            f" {_sentence(GRID_COLUMN)}: the same claim judged by the same rule under "
            "each protocol of the protocol-sensitivity run (fill or canvas x correlation or "
            "steps x output, on its own images; section Protocol sensitivity): a verdict that "
            "changes there depends on the protocol." if GRID_COLUMN in table else "") + (
            f" {_sentence(FLOOR_COLUMN)}: trivial maps (floors that never read the model) "
            "whose paired difference to UNI, or to the strongest competitor, is better with "
            "its whole interval (no test: a warning about the metric, not a verdict), shown "
            "as map minus method; claims are judged on the attribution methods alone."
            if FLOOR_COLUMN in table else ""), "",
        table.to_markdown(index=False), "", *legend, "",
    ]


def _sentence(text: str) -> str:
    """``text`` with its first letter upper-case, the rest as written (method names)."""
    return text[:1].upper() + text[1:]


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_")


def paired_block(records: pd.DataFrame, metrics: Sequence[str], out: Path, name: str,
                 reference: str = REFERENCE):
    """Markdown lines: a method x metric table of paired differences to ``reference``
    (UNI) and, per metric, Friedman's test with its critical-difference figure (under
    ``out/figures``); the attribution methods only (the trivial maps are floors,
    :mod:`uni.analysis.floors`)."""
    records = without_floors(records)
    cells, tests = {}, []
    for metric in metrics:
        differences = paired_differences(records, metric, reference)
        if differences.empty:
            continue
        cells[metric] = {
            row.method: f"{row.mean:+.3f} [{row.low:+.3f}, {row.high:+.3f}] p={row.p_holm:.2g}"
                        f" ({row.n})"
            for row in differences.itertuples()
        }
        result = friedman_posthoc(records, metric)
        if result is not None:
            figure = cd_figure(result, out / "figures" / f"cd_{_slug(metric + name)}.png")
            left_out = "".join(f"; {m} left out ({n} images)"
                               for m, n in result.left_out.items())
            tests.append(f"- `{metric}`: Friedman chi2 = {result.statistic:.1f}, p = "
                         f"{result.p:.2g} ({len(result.mean_ranks)} methods, n = {result.n} "
                         f"images complete for all{left_out}); [critical-difference "
                         f"diagram]({figure.relative_to(out)})")
    if not cells:
        return []
    shown = "UNI" if reference == REFERENCE else reference
    return [
        f"Paired differences to {shown} (method minus {shown}; mean [95% bootstrap interval], "
        "Holm-corrected Wilcoxon p, (n paired images)):", "",
        pd.DataFrame(cells).to_markdown(), "", *tests, "",
    ]

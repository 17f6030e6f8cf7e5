"""Protocol sensitivity (issue 15): each method's rank under each protocol of one run of
``experiment=protocol_sensitivity``, whose eval entries score one set of attributions
under every protocol (entries named ``<metric>__<fill>__<correlation|steps>__<output>``,
MuFidelity's with ``__<masks>`` appended, :mod:`uni.protocol_grid`; records of other
metrics are left out).

:func:`write_protocol_sensitivity` writes

- ``tables/protocol_sensitivity.csv``: one row per (protocol, method): mean over images,
  95% bootstrap interval, n, and the method's rank within the protocol (1 = best; lower
  deletion is better, higher MuFidelity and insertion; ties share the best rank);
- ``tables/protocol_sensitivity.md``: the ranks as a protocol x method table and a line
  on how much the ranking moves (each method's best and worst rank, how often each
  method ranks first, and Kendall's tau between the protocols' rankings);
- ``figures/protocol_sensitivity.png``: the ranks as a heatmap;
- ``tables/protocol_verdicts.csv``: one row per protocol: the claim "UNI is best on this
  metric" judged under that protocol by the Claims table's rule (:func:`uni.analysis.stats.verdict`:
  paired differences to UNI, Holm-corrected Wilcoxon, bootstrap intervals), and in the
  Markdown, for each protocol choice (fill, correlation or steps, masks, output), how many pairs
  of protocols that differ in that choice alone reach different verdicts.

    python -m uni.analysis.protocol_sensitivity RUN_DIR [OUT_DIR]
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from uni import catalog
from uni.analysis import stats
from uni.analysis.claims import DECIDING, REFERENCE, judged
from uni.analysis.tables import SKIPPED
from uni.catalog import lower_is_better, metrics
from uni.protocol_grid import SEPARATOR, parse_entry_name
from uni.records import RECORDS_FILE, RecordStore, has_records, write_csv, write_figure, write_text

NAME = "protocol_sensitivity"
OUTPUT_ORDER = ("prob", "logit")
# the choices a protocol entry is made of (uni.protocol_grid), besides its metric
CHOICES = ("fill", "correlation_or_steps", "output", "masks")
NO_MASKS = "-"  # the masks choice of an entry without one (deletion, insertion)
VERDICT_COLUMNS = ["model", "protocol", "metric", *CHOICES, "n",
                   "effect (UNI - strongest)", DECIDING, "verdict"]
COLUMNS = ["protocol", "metric", "fill", "correlation_or_steps", "output", "masks", "method",
           "mean", "ci_low", "ci_high", "n", "rank", "lower_is_better"]
MASKS_ORDER = ("bernoulli", "exact", NO_MASKS)


def _position(value: str, order) -> tuple:
    """Sort key: known values in their order, then others alphabetically."""
    return (order.index(value), "") if value in order else (len(order), value)


def choices(protocol: str) -> dict | None:
    """The metric and :data:`CHOICES` of a protocol entry's name (``masks``:
    :data:`NO_MASKS` where the name has none), or ``None`` for another name."""
    parts = parse_entry_name(protocol)
    return None if parts is None else {"masks": NO_MASKS, **parts}


def protocol_key(protocol: str) -> tuple:
    """Sort key of an entry name: metric, fill, correlation or steps (numerically), output,
    masks."""
    parts = choices(protocol)
    second = parts["correlation_or_steps"]
    fill = parts["fill"].split("=")[0]  # fills merged as identical: their first's place
    return (
        _position(parts["metric"], list(metrics())), _position(fill, catalog.fills()),
        (0, int(second), "") if second.isdigit() else (1, 0, second),
        _position(parts["output"], OUTPUT_ORDER), _position(parts["masks"], MASKS_ORDER),
    )


def identical_fills(records: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Per model, the groups of fills that put the same pixels in: detected as fills whose
    scores are bit-identical on every image and method under every protocol both are
    scored under (the score cache, :mod:`uni.metrics.score_cache`, keys a perturbed image
    by the content of its fill image, so identical fill images give identical scores; on
    EfficientNet-Lite, normalised with mean 0.5, ``grey`` and ``model_zero``)."""
    values = records[records["metric"] != SKIPPED]
    found = {}
    for model, part in values.groupby("model"):
        parsed = {p: choices(p) for p in part["metric"].unique()}
        parsed = {p: c for p, c in parsed.items() if c is not None}
        if not parsed:
            continue
        keyed = part[part["metric"].isin(parsed)]
        keyed = keyed.assign(
            fill=keyed["metric"].map({p: c["fill"] for p, c in parsed.items()}),
            rest=keyed["metric"].map({p: tuple(v for k, v in c.items() if k != "fill")
                                      for p, c in parsed.items()}))
        wide = keyed.pivot_table(index=["rest", "image_id", "method"], columns="fill",
                                 values="value", aggfunc="first", dropna=False)
        fills = sorted(wide.columns, key=lambda f: _position(f, catalog.fills()))
        groups: list[list[str]] = []
        for fill in fills:
            for group in groups:
                both = wide[[group[0], fill]].dropna(how="all")
                if len(both) and both[group[0]].equals(both[fill]):
                    group.append(fill)
                    break
            else:
                groups.append([fill])
        merged = [g for g in groups if len(g) > 1]
        if merged:
            found[str(model)] = merged
    return found


def merge_note(merged: dict[str, list[list[str]]]) -> str:
    """A line naming the fills counted once per model (:func:`identical_fills`)."""
    if not merged:
        return ""
    text = "; ".join(f"on {model}: {', '.join(' = '.join(g) for g in groups)}"
                     for model, groups in merged.items())
    return (f"Fills that put identical pixels in, merged and counted once ({text}): every "
            "table, rank and count below is over distinct protocols.\n\n")


def merge_identical_fills(records: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``records`` with each model's identical fills (:func:`identical_fills`) counted
    once: the first fill's rows renamed ``<fill>=<fill>...`` in the entry name, the
    others' rows dropped; and the groups merged, per model."""
    found = identical_fills(records)
    if not found:
        return records, found
    frames = []
    for model, part in records.groupby("model", dropna=False):
        for group in found.get(str(model), []):
            names = {}
            for protocol in part["metric"].unique():
                parts = protocol.split(SEPARATOR)
                if choices(protocol) is None or parts[1] not in group:
                    continue
                names[protocol] = (SEPARATOR.join([parts[0], "=".join(group), *parts[2:]])
                                   if parts[1] == group[0] else None)
            part = part[~part["metric"].isin([p for p, n in names.items() if n is None])]
            part = part.assign(metric=part["metric"].map(
                lambda p, names=names: names.get(p) or p))
        frames.append(part)
    return pd.concat(frames, ignore_index=True), found


def protocol_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (protocol, method) of the records whose metric is a protocol entry,
    with :data:`COLUMNS`, in protocol order and by rank within each protocol."""
    values = records[records["metric"] != SKIPPED]
    rows = []
    for (protocol, method), group in values.groupby(["metric", "method"], sort=False):
        parts = choices(protocol)
        if parts is None:
            continue
        value = group["value"].to_numpy(dtype=float)
        usable = np.isfinite(value)
        low, high = stats.bootstrap_interval(value)
        rows.append({
            "protocol": protocol, **parts, "method": method,
            "mean": float(value[usable].mean()) if usable.any() else math.nan,
            "ci_low": low, "ci_high": high, "n": int(usable.sum()),
        })
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame(rows)
    table["lower_is_better"] = table["metric"].map(lower_is_better)
    # rank 1 = best: lower deletion, higher MuFidelity / insertion; NaN means get no rank
    signed = table["mean"].where(table["lower_is_better"], -table["mean"])
    table["rank"] = signed.groupby(table["protocol"]).rank(method="min").astype("Int64")
    order = sorted(table["protocol"].unique(), key=protocol_key)
    table["_order"] = table["protocol"].map({p: i for i, p in enumerate(order)})
    table = table.sort_values(["_order", "rank", "method"], na_position="last")
    return table.drop(columns="_order").reset_index(drop=True)[COLUMNS]


def verdict_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per model and protocol entry of ``records`` (:data:`VERDICT_COLUMNS`, in
    protocol order): the claim "UNI is best on the entry's metric" (its direction: lower
    deletion is better) under that protocol, judged as the Claims table judges it
    (:func:`uni.analysis.claims.judged`); empty without UNI."""
    values = records[records["metric"] != SKIPPED]
    protocols = [p for p in values["metric"].unique() if parse_entry_name(p) is not None]
    rows = []
    for model, part in values.groupby("model"):
        for protocol in sorted(protocols, key=protocol_key):
            parts = choices(protocol)
            differences = stats.paired_differences(part[part["metric"] == protocol],
                                                   protocol, REFERENCE)
            if not differences.empty:
                rows.append({"model": model, "protocol": protocol, **parts,
                             **judged(differences, parts["metric"])})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _tally(verdicts: pd.Series) -> str:
    """``"holds 12, inconclusive 8"``: each verdict present, in :data:`stats.VERDICTS` order."""
    counts = verdicts.value_counts()
    return ", ".join(f"{v} {counts[v]}" for v in stats.VERDICTS if v in counts)


def verdict_tallies(verdicts: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, metric) -> how UNI's claim on that metric fares across the protocols of
    :func:`verdict_table`, e.g. ``"holds 12, inconclusive 8 of 20 protocols (n 20)"``."""
    return {key: f"{_tally(group['verdict'])} of {len(group)} protocols (n {group['n'].min()})"
            for key, group in verdicts.groupby(["model", "metric"], sort=False)}


def verdict_flips(verdicts: pd.DataFrame) -> pd.DataFrame:
    """For each choice of :data:`CHOICES`: the ``pairs`` of protocols (same model and
    metric) that differ in that choice alone, and how many of them reach different
    verdicts (``differing``)."""
    rows = []
    for choice in CHOICES:
        fixed = ["model", "metric", *(c for c in CHOICES if c != choice)]
        pairs = flips = 0
        for _, group in verdicts.groupby(fixed):
            for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
                pairs += 1
                flips += a["verdict"] != b["verdict"]
        rows.append({"choice": choice, "pairs": pairs, "differing": flips})
    return pd.DataFrame(rows)


def verdict_markdown(verdicts: pd.DataFrame) -> str:
    """The verdict of UNI's claim under each protocol, their tally per metric, and how
    often changing one choice alone changes the verdict."""
    if verdicts.empty:
        return "No UNI records among the protocol entries: no verdicts."
    tally = "; ".join(f"{metric}: {_tally(group['verdict'])}"
                      for metric, group in verdicts.groupby("metric", sort=False))
    flips = "; ".join(f"{row.choice}: {row.differing} of {row.pairs}"
                      for row in verdict_flips(verdicts).itertuples())
    return (f"UNI's claim (best on the metric) under each protocol, judged by the Claims "
            f"rule:\n\n{verdicts.drop(columns=['metric', *CHOICES]).to_markdown(index=False)}"
            f"\n\nVerdicts per metric (of its protocols): {tally}.\n\nPairs of protocols "
            f"that differ in one choice alone and reach different verdicts: {flips}.\n")


def rank_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Ranks, protocols (in order) x methods (best mean rank first)."""
    wide = table.pivot(index="protocol", columns="method", values="rank").astype(float)
    wide = wide.loc[list(dict.fromkeys(table["protocol"]))]
    methods = wide.mean().sort_values(kind="stable").index
    return wide[list(methods)]


def kendall_taus(wide: pd.DataFrame) -> pd.Series:
    """Kendall's tau-b between the rankings of every pair of protocols (rows of ``wide``),
    over the methods ranked under both; indexed by the pair."""
    taus = {}
    for a, b in itertools.combinations(wide.index, 2):
        both = wide.loc[a].notna() & wide.loc[b].notna()
        if both.sum() >= 2:
            tau = kendalltau(wide.loc[a][both], wide.loc[b][both]).statistic
            if math.isfinite(tau):
                taus[(a, b)] = float(tau)
    return pd.Series(taus, dtype=float)


def summary_line(table: pd.DataFrame) -> str:
    """One line on how much the ranking moves across the protocols of ``table``."""
    wide = rank_matrix(table)
    if wide.empty:
        return "No protocol entries in these records."
    ranges = ", ".join(
        f"{m} {int(wide[m].min())}-{int(wide[m].max())}" if wide[m].notna().any() else f"{m} -"
        for m in wide.columns)
    firsts = (wide == 1).sum()
    winners = ", ".join(f"{m} {int(firsts[m])}" for m in firsts.sort_values(
        ascending=False, kind="stable").index if firsts[m])
    taus = kendall_taus(wide)
    if taus.empty:
        tau_text = "Kendall's tau between protocols: n/a (fewer than two rankings)"
    else:
        lowest = taus.idxmin()
        within = {}
        for metric in dict.fromkeys(table["metric"]):
            same = [pair for pair in taus.index
                    if all(parse_entry_name(p)["metric"] == metric for p in pair)]
            if same:
                within[metric] = taus[same].mean()
        within_text = ", ".join(f"{m} {t:.2f}" for m, t in within.items())
        tau_text = (f"Kendall's tau between protocols' rankings: mean {taus.mean():.2f}, "
                    f"min {taus.min():.2f} ({lowest[0]} vs {lowest[1]}); "
                    f"mean within a metric: {within_text}")
    return (f"Over {len(wide)} protocols, rank range (best-worst) per method: {ranges}; "
            f"ranked first (of {len(wide)}): {winners or 'none'}; {tau_text}.")


def markdown(table: pd.DataFrame) -> str:
    """The ranks as a protocol x method Markdown table, then :func:`summary_line`."""
    wide = rank_matrix(table)
    text = wide.apply(lambda column: column.map(lambda r: "-" if pd.isna(r) else str(int(r))))
    n = table.groupby("protocol")["n"].max().reindex(wide.index)
    text.insert(len(text.columns), "n images", n.astype(int).astype(str))
    return (f"Rank of each method under each protocol (1 = best; deletion: lower is better)."
            f"\n\n{text.to_markdown()}\n\n{summary_line(table)}\n")


def rank_figure(table: pd.DataFrame, path: Path) -> Path:
    """Heatmap of each method's rank (columns) under each protocol (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = rank_matrix(table)
    data = wide.to_numpy(dtype=float)
    rows, columns = data.shape
    fig, ax = plt.subplots(figsize=(1.0 * columns + 5.0, 0.22 * rows + 1.8))
    image = ax.imshow(data, cmap="viridis_r", vmin=1, vmax=max(columns, 2), aspect="auto")
    for i, j in itertools.product(range(rows), range(columns)):
        if math.isfinite(data[i, j]):
            ax.text(j, i, str(int(data[i, j])), ha="center", va="center", fontsize=7,
                    color="black" if data[i, j] <= (columns + 1) / 2 else "white")
    ax.set_xticks(range(columns), labels=list(wide.columns), rotation=30, ha="right")
    ax.set_yticks(range(rows), labels=list(wide.index), fontsize=7)
    metrics = [parse_entry_name(p)["metric"] for p in wide.index]
    for i in range(1, rows):
        if metrics[i] != metrics[i - 1]:
            ax.axhline(i - 0.5, color="white", linewidth=2)
    bar = fig.colorbar(image, ax=ax, shrink=0.6, ticks=range(1, max(columns, 2) + 1))
    bar.set_label("rank (1 = best)")
    ax.set_title("Each method's rank under each protocol\n(deletion: lower is better)",
                 fontsize=10)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path


def write_protocol_sensitivity(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The table (CSV, Markdown) and figure of ``run_dir``'s protocol entries under
    ``out_dir``'s ``tables/`` and ``figures/``; nothing (``[]``) when it has none."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not has_records(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no {RECORDS_FILE}")
    records, merged = merge_identical_fills(RecordStore(run_dir, readonly=True).load())
    table = protocol_table(records)
    if table.empty:
        return []
    verdicts = verdict_table(records)
    tables = out_dir / "tables"
    csv, md = tables / f"{NAME}.csv", tables / f"{NAME}.md"
    verdict_csv = tables / "protocol_verdicts.csv"
    write_csv(table, csv)
    write_csv(verdicts, verdict_csv)
    write_text(md, f"{merge_note(merged)}{markdown(table)}\n{verdict_markdown(verdicts)}")
    return [csv, md, rank_figure(table, out_dir / "figures" / f"{NAME}.png"), verdict_csv]


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m uni.analysis.protocol_sensitivity RUN_DIR [OUT_DIR]")
    try:
        written = write_protocol_sensitivity(sys.argv[1], sys.argv[-1])
    except FileNotFoundError as err:  # not a run directory
        sys.exit(f"error: {err}")
    print(written[1].read_text() if written else "no protocol entries in these records")

"""UNI's ablation (``experiment=uni_ablation``, ``make ablation``): one run per UNI setting
under ``<results>/uni_ablation/``; this module labels each run's records with the setting
(read from the run's ``.hydra/config.yaml``) and writes the table
``tables/uni_ablation.csv`` and one figure per metric (metric against eps, one line per
norm, the other variants as points at their eps; 95% bootstrap intervals).

L2 radii are drawn at their matched L-inf radius, ``eps_inf = 2 eps_2 / sqrt(d)``
(``d = 3 H W``), the pairing the ``make ablation`` sweep uses.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from uni.records import has_records, saved_config, write_csv, write_text

EXPERIMENT = "uni_ablation"
SETTING = ["norm", "eps", "eps_255", "variant", "pgd_steps", "search", "kl_direction"]
# per-image diagnostics (columns of every row) summarised beside the metrics
DIAGNOSTICS = ("kl", "p_c_unlearned", "p_c_baseline", "boundary_fraction", "best_iteration",
               "completeness_gap", "monotonicity")
# the centre of the sweep: every other axis is varied one at a time around it
CENTRE = {"variant": "normalised", "pgd_steps": 20, "search": "adam-constant",
          "kl_direction": "forward"}
# the paper's Algorithm 1 (method=uni_paper) as an ablation cell: its setting columns
PAPER_CELL = {"norm": "linf", "eps_255": 4.0, "variant": "fixed", "pgd_steps": 20,
              "search": "sign-constant-last"}
# how a default is chosen from the ablation (`select_setting`): faithfulness and robustness
# both count; +1 higher is better, -1 lower is better
CRITERIA = {"mufidelity": 1, "insertion-deletion": 1, "noise_floor_spearman": 1,
            "robustness_random_spearman": 1, "stability_l1@4": -1}
# a baseline is "featureless" when the model gives the explained class p_c(x') below this
FEATURELESS = 0.5
MIN_IMAGES = 30
# the tuning images the model is most sure of are the hardest to unlearn: a setting must
# keep p_c(x') below FEATURELESS on this many of them too (the ablation's images are a
# random draw, not the hardest); cached in tables/uni_ablation_featureless.csv
HARD_IMAGES = 48
FEATURELESS_FILE = "uni_ablation_featureless.csv"


def variant(options: dict) -> str:
    """The unlearning variant of UNI options: ``threshold`` (until ``p_c`` falls below
    ``unlearn_until``), ``normalised`` (``eta g / ||g||``) or ``fixed`` (``eta g``)."""
    if options.get("unlearn_until") is not None:
        return "threshold"
    return "normalised" if options.get("unlearn_step") == "normalised" else "fixed"


def setting(options: dict, input_size=(3, 224, 224)) -> dict:
    """The ablation's columns for one run's UNI options."""
    eps, norm = float(options["eps"]), options["norm"]
    dimension = math.prod(input_size)
    eps_linf = eps if norm == "linf" else 2 * eps / math.sqrt(dimension)
    search = f"{options.get('pgd_update', 'sign')}-{options.get('pgd_schedule', 'constant')}"
    if options.get("pgd_return", "best") == "last":  # the paper's: the last iterate
        search += "-last"
    return {
        "norm": norm, "eps": eps, "eps_255": round(eps_linf * 255, 2),
        "variant": variant(options), "pgd_steps": int(options["pgd_steps"]),
        "search": search, "kl_direction": options.get("kl_direction", "forward"),
    }


def ablation_runs(results_dir: str | Path, experiment: str = EXPERIMENT) -> list[Path]:
    """The run folders of ``experiment`` under ``results_dir`` that hold records."""
    root = Path(results_dir) / experiment
    return sorted(p for p in root.glob("*") if p.is_dir() and has_records(p))


def hydra_config(run_dir: Path) -> dict:
    """The composed config a run folder holds (``.hydra/config.yaml``), as a plain dict."""
    return OmegaConf.to_container(saved_config(run_dir))


def records_and_diagnostics(run_dir: Path, config: dict) -> pd.DataFrame:
    """One ablation run's records, ``image_id, method, model, metric, value``: its metrics
    and its per-image diagnostics (:data:`DIAGNOSTICS`) as rows; ``p_c_baseline`` is
    ``score_baseline`` where the run explained the probability and recorded no ``p_c``."""
    from uni.analysis.tables import load_records, with_derived_metrics

    records = with_derived_metrics(load_records([run_dir]))
    # one row per image carries the diagnostics (every metric row repeats them)
    first = records.drop_duplicates(["image_id", "method"])
    if "p_c_baseline" not in first and "score_baseline" in first \
            and config.get("output", "prob") == "prob":
        first = first.assign(p_c_baseline=first["score_baseline"])
    diagnostics = [first[["image_id", "method", "model"]].assign(metric=name, value=first[name])
                   for name in DIAGNOSTICS if name in first]
    return pd.concat([records[["image_id", "method", "model", "metric", "value"]],
                      *diagnostics], ignore_index=True)


def ablation_records(results_dir: str | Path) -> pd.DataFrame:
    """Every ablation run's records (metrics and per-image diagnostics as rows), with the
    setting's columns."""
    frames = []
    for run_dir in ablation_runs(results_dir):
        config = hydra_config(run_dir)
        frames.append(records_and_diagnostics(run_dir, config)
                      .assign(**setting(config["method"]["uni"]), run=run_dir.name))
    if not frames:
        return pd.DataFrame(columns=[*SETTING, "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def ablation_table(records: pd.DataFrame) -> pd.DataFrame:
    """The setting's columns (``SETTING``), ``metric, mean, ci_low, ci_high, n`` and
    ``n_total`` (skips included) per setting and metric (``n``: a run's skipped images are
    not counted)."""
    from uni.analysis.tables import summarise

    summary = summarise(records, rows=SETTING, columns="metric")
    summary = summary.rename(columns={"low": "ci_low", "high": "ci_high"})
    return summary.sort_values(["metric", "norm", "variant", "search", "pgd_steps", "eps_255"],
                               ignore_index=True)


def ablation_figure(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """``metric`` against eps (matched L-inf radius, /255, log scale): a line per norm at
    the sweep's centre, a point per other variant, search and step count."""
    from uni.analysis.figures import pyplot, save_figure

    plt = pyplot()
    rows = table[table["metric"] == metric]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    centre = (rows["variant"] == CENTRE["variant"]) & (rows["search"] == CENTRE["search"]) \
        & (rows["pgd_steps"] == CENTRE["pgd_steps"]) \
        & (rows["kl_direction"] == CENTRE["kl_direction"])
    for norm, line in rows[centre].groupby("norm"):
        line = line.sort_values("eps_255")
        (drawn,) = ax.plot(line["eps_255"], line["mean"], marker="o", ms=3, label=norm)
        ax.fill_between(line["eps_255"], line["ci_low"], line["ci_high"],
                        color=drawn.get_color(), alpha=0.15)
    for _, point in rows[~centre].iterrows():
        label = (f"{point['norm']} {point['variant']}, {point['search']}, "
                 f"T={point['pgd_steps']}, KL {point['kl_direction']}")
        ax.errorbar(point["eps_255"], point["mean"], fmt="s", ms=4, capsize=2, label=label,
                    yerr=[[point["mean"] - point["ci_low"]], [point["ci_high"] - point["mean"]]])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("eps (L-inf, /255; L2 at its matched radius)")
    ax.set_ylabel(metric)
    ax.set_title(f"UNI ablation: {metric} (n per point in the table)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def select_setting(records: pd.DataFrame, hard: pd.DataFrame | None = None,
                   columns: list[str] = SETTING) -> pd.DataFrame:
    """UNI's default by a stated rule, one row per setting (``columns``: what tells the
    settings apart; the baselines' ablation passes its own), best first:

    1. *complete*: at least ``MIN_IMAGES`` images recorded for every criterion metric
       (a recorded skip counts: the robustness attack skips an image whose label the
       perturbation flips, an outcome of the setting, not a missing image);
    2. *featureless*: ``p_c(x') < FEATURELESS`` on every image of the setting (the premise
       of a learned baseline; too small a ball cannot reach the unlearned prediction);
    3. among those, ranked by the mean rank over the ``CRITERIA`` metrics (each ranked by
       its mean over images; ties share the average rank); equal mean ranks go to the
       more featureless baseline (lower ``max_p_c_baseline``);
    4. the first in that order that is also featureless on the ``HARD_IMAGES`` most
       confident development images (``hard``: :func:`featureless_on_hardest` per run,
       ``max_p_c_hard``) is selected, once no setting is still running
       (:func:`running_settings`: it could rank first when done).

    Columns: the setting, ``run``, ``max_p_c_baseline``, ``eligible`` (1-2),
    ``max_p_c_hard`` (NaN: not checked), one rank per criterion, ``mean_rank``,
    ``selected``."""
    rows = records[records["metric"].isin([*CRITERIA, "p_c_baseline"])]
    values = rows[rows["value"].notna()]
    means = values.pivot_table(index=columns, columns="metric", values="value", aggfunc="mean")
    counts = rows.groupby([*columns, "metric"]).size().unstack("metric")
    worst = values[values["metric"] == "p_c_baseline"].groupby(columns)["value"].max()
    criteria = [m for m in CRITERIA if m in means]
    complete = (counts.reindex(columns=criteria).fillna(0) >= MIN_IMAGES).all(axis=1)
    runs = records.groupby(columns)["run"].first() if "run" in records else None
    out = pd.DataFrame({"max_p_c_baseline": worst.reindex(means.index),
                        "complete": complete.reindex(means.index, fill_value=False)})
    if runs is not None:
        out.insert(0, "run", runs.reindex(means.index))
    out["eligible"] = out["complete"] & (out["max_p_c_baseline"] < FEATURELESS)
    for metric in criteria:
        ranks = (CRITERIA[metric] * -means.loc[out["eligible"], metric]).rank()
        out["rank " + metric] = ranks
    out["mean_rank"] = out[["rank " + m for m in criteria]].mean(axis=1)
    out = out.reset_index().sort_values(["eligible", "mean_rank", "max_p_c_baseline"],
                                        ascending=[False, True, True], ignore_index=True)
    checked = (hard.set_index("run")["max_p_c_hard"] if hard is not None and len(hard)
               else pd.Series(dtype=float))
    out["max_p_c_hard"] = out["run"].map(checked) if "run" in out else float("nan")
    passes = out["eligible"] & (out["max_p_c_hard"] < FEATURELESS)
    unchecked = out["eligible"] & out["max_p_c_hard"].isna()
    # the first eligible setting that passes, unless an unchecked one ranks above it or a
    # setting still running could be selected when done (incomplete, featureless so far,
    # and not already failing on the hardest images)
    first = passes.idxmax() if passes.any() else None
    running = running_settings(out)
    out["selected"] = False
    if first is not None and not unchecked.loc[:first].any() and not running.any():
        out.loc[first, "selected"] = True
    return out


def running_settings(selection: pd.DataFrame) -> pd.Series:
    """The settings of :func:`select_setting`'s table that could still be selected once
    complete: incomplete, featureless on every image so far, not failing on the hardest
    images (unchecked or passing)."""
    return (~selection["complete"] & ~(selection["max_p_c_baseline"] >= FEATURELESS)
            & ~(selection["max_p_c_hard"] >= FEATURELESS))


def select_per_group(records: pd.DataFrame, hard: pd.DataFrame | None = None,
                     columns: list[str] = SETTING, groups: tuple[str, ...] = ("model",)):
    """:func:`select_setting` separately within each group (a model; for the baselines a
    model and method): one default per group, the rows of every group concatenated."""
    present = [g for g in groups if g in records]
    if not present:
        return select_setting(records, hard, columns)
    frames = [select_setting(part, hard, columns).assign(**dict(zip(present, key if
              isinstance(key, tuple) else (key,))))
              for key, part in records.groupby(present, sort=True)]
    return pd.concat(frames, ignore_index=True)


def most_confident(model, root: str | Path, count: int = HARD_IMAGES, subset: str = "all"):
    """The ``count`` images of the folder ``root`` (its ``subset``,
    :mod:`uni.data.selection`) with the highest top-class probability: their tensors,
    predicted classes and ids."""
    import torch

    from uni.data import build_dataset

    dataset = build_dataset("folder", model.data_config, root=root, subset=subset,
                            sample="sorted")
    confidence = []
    with torch.no_grad():
        for start in range(0, len(dataset), 25):
            x = torch.stack([dataset[i].image for i in range(start, min(start + 25,
                                                                         len(dataset)))])
            confidence.append(model(x).softmax(-1).max(-1).values)
    top = torch.cat(confidence).argsort(descending=True)[:count].tolist()
    x = torch.stack([dataset[i].image for i in top])
    with torch.no_grad():
        target = model(x).argmax(-1)
    return x, target, [dataset[i].image_id for i in top]


def featureless_on_hardest(model, images, options: dict, batch: int = 8,
                           method: str = "uni") -> float:
    """The largest ``p_c(x')`` over ``images`` (``most_confident``'s triple) at the
    baselines of ``method`` with ``options`` (a run's ``method.<name>``; UNI: options the
    baseline search does not take, e.g. IG's steps, are ignored; a method with noise
    draws: the largest over draws)."""
    import inspect

    import torch

    from uni.methods import Explainer
    from uni.methods.unlearning import uni_baseline

    x, target, ids = images
    if method != "uni":
        explainer = Explainer(model, method, {k: v for k, v in options.items() if k != "kind"})
        worst = []
        with torch.no_grad():
            for start in range(0, len(x), batch):
                part = slice(start, start + batch)
                lines, draws = explainer.baselines(x[part], target[part], image_ids=ids[part])
                p = model(lines).softmax(-1).gather(1, target[part].repeat(draws)[:, None])
                worst.append(p.max())
        return float(torch.stack(worst).max())
    accepted = set(inspect.signature(uni_baseline).parameters)
    options = {k: v for k, v in options.items() if k in accepted and k != "image_ids"}
    worst = []
    for start in range(0, len(x), batch):
        part = slice(start, start + batch)
        _, diagnostics = uni_baseline(model, x[part], target[part], image_ids=ids[part],
                                      **options)
        worst.append(diagnostics["p_c_baseline"].max())
    return float(torch.stack(worst).max())


def check_hardest(results_dir: str | Path, root: str | Path, model_name: str | None = None,
                  count: int = HARD_IMAGES, experiment: str = EXPERIMENT,
                  records: pd.DataFrame | None = None, select=select_setting,
                  cache_name: str = FEATURELESS_FILE) -> pd.DataFrame:
    """Walk the selection's order (``select``: :func:`select_setting`, or the baselines'
    per-method one), checking each eligible setting on the ``count`` most confident
    images of the tuning subset of ``root`` until one passes, and each setting still
    running (one that fails there cannot hold the selection up; cached per run in
    ``tables/<cache_name>``); returns the selection. ``records``: the ablation's
    (default: UNI's, :func:`ablation_records`)."""
    from uni.engine.job import method_options
    from uni.models import load_model, set_runtime

    results_dir = Path(results_dir)
    cache = results_dir / "tables" / cache_name
    hard = pd.read_csv(cache) if cache.is_file() else pd.DataFrame(
        columns=["run", "max_p_c_hard", "images"])
    records = ablation_records(results_dir) if records is None else records
    configs = {run: hydra_config(results_dir / experiment / run)
               for run in records["run"].unique()}
    loaded = {}
    while True:
        selection = select(records, hard)
        # groups (the baselines' methods) with a selection are done
        group = (selection["method"] if "method" in selection
                 else pd.Series(0, index=selection.index))
        done = selection["selected"].groupby(group).transform("any")
        # the running ones too: failing on the hardest images, one cannot hold a group up
        candidates = selection["eligible"] | running_settings(selection)
        todo = selection[candidates & selection["max_p_c_hard"].isna() & ~done]
        if not len(todo):
            return selection
        run = todo.iloc[0]["run"]
        name = model_name or configs[run]["model"]["name"]
        if name not in loaded:
            model = set_runtime(load_model(name), fold_batchnorm=True)
            loaded[name] = (model, most_confident(model, root, count, subset="tune"))
        model, images = loaded[name]
        (method, options), = configs[run]["method"].items()  # one method per ablation run
        kind = options.get("kind", method)
        if kind != "uni":  # options the runner completes from the run's split, as it does
            data = {**configs[run]["data"], "root": str(root)}  # (reference: split)
            options = {"kind": kind, **method_options({method: options}, data,
                                                      model.data_config)[method]}
        worst = featureless_on_hardest(model, images, options, method=kind)
        print(f"{run}: max p_c(x') on the {count} most confident images {worst:.3f}",
              flush=True)
        hard = pd.concat([hard, pd.DataFrame([{"run": run, "max_p_c_hard": worst,
                                               "images": count}])], ignore_index=True)
        write_csv(hard, cache)


def selected_overrides(results_dir: str | Path, entry: str) -> list[str]:
    """Hydra overrides giving the method entry ``entry`` (a ``kind: uni`` entry, e.g. a
    per-model-tuned UNI beside the default one) the eps and norm of the setting selected
    under ``results_dir``, from its records and the hardest-image checks that ``select``
    cached (no model is loaded). ValueError while any setting of the sweep is incomplete
    (the selection sees only the settings that have records: one a shard has not started
    yet is invisible), when nothing is selected, or when the selection differs from the
    sweep's centre in more than eps and norm."""
    if not entry.isidentifier():
        raise ValueError(f"entry {entry!r} is not a method entry's name (letters, digits, _)")
    cache = Path(results_dir) / "tables" / FEATURELESS_FILE
    selection = select_setting(ablation_records(results_dir),
                               pd.read_csv(cache) if cache.is_file() else None)
    incomplete = int((~selection["complete"]).sum())
    if incomplete:
        raise ValueError(f"{incomplete} of the {len(selection)} UNI settings under {results_dir} "
                         f"have fewer than {MIN_IMAGES} images: finish the sweep, then `python -m "
                         f"uni.analysis.ablation select {results_dir} IMAGE_FOLDER`")
    if not selection["selected"].any():
        raise ValueError(f"no UNI setting is selected under {results_dir} yet: run `python -m "
                         f"uni.analysis.ablation select {results_dir} IMAGE_FOLDER` when its "
                         "runs are complete")
    best = selection[selection["selected"]].iloc[0]
    other = {k: best[k] for k in CENTRE if best[k] != CENTRE[k]}
    if other:
        raise ValueError(f"the setting selected under {results_dir} differs from the centre "
                         f"in {other}, not only eps and norm: state its options by hand")
    return [f"method.{entry}.eps={float(best['eps'])!r}", f"method.{entry}.norm={best['norm']}"]


def selection_lines(selection: pd.DataFrame) -> list[str]:
    """REPORT lines: the rule, the ranking and the selected setting."""
    if selection["selected"].any():
        best = selection[selection["selected"]].iloc[0]
        chosen = (f"**selected: {best['norm']} eps = {best['eps']:g} ({best['eps_255']:g}/255 "
                  f"L-inf-matched), {best['variant']} unlearning, {best['search']} search, "
                  f"T = {best['pgd_steps']}**")
    else:
        chosen = ("**nothing selected yet**: no setting is complete and featureless, or the "
                  "best ones are not checked on the hardest images (`python -m "
                  "uni.analysis.ablation select RESULTS_DIR`)")
    criteria = ", ".join(f"{m} ({'higher' if d > 0 else 'lower'} better)"
                         for m, d in CRITERIA.items())
    return [
        f"Default by rule (`uni.analysis.ablation.select_setting`): among settings with >= "
        f"{MIN_IMAGES} images recorded for every criterion (a recorded skip counts: the "
        "means tables' n counts finite values only) and p_c(x') < "
        f"{FEATURELESS} on every image, in order of mean rank over "
        f"{criteria} (ties: the lower max p_c(x')), the first whose baseline also keeps "
        f"p_c(x') < {FEATURELESS} on the {HARD_IMAGES} most confident tuning "
        f"images (`max_p_c_hard`): {chosen}. eps_255: the radius as an L-inf radius in "
        "/255 (an L2 radius at its matched L-inf one, 2 eps / sqrt(3 H W)).", "",
        selection.drop(columns=["run", "eps"], errors="ignore").round(3)
        .to_markdown(index=False), "",
    ]


FIGURE_METRICS = ("mufidelity", "insertion-deletion", "robustness_random_intersection",
                  "noise_floor_intersection", "noise_floor_spearman", "stability_l1@4", "kl",
                  "p_c_baseline")


def write_ablation(results_dir: str | Path, out: str | Path | None = None,
                   min_images: int = MIN_IMAGES) -> list[str]:
    """The table (CSV and Markdown) and figures under ``out`` (default: ``results_dir``);
    returns REPORT lines (empty when no ablation run has records). Settings with fewer
    than ``min_images`` images (an interrupted run) are in the table with their n, and also
    in ``uni_ablation_partial.csv`` until they are complete."""
    out = Path(out or results_dir)
    records = ablation_records(results_dir)
    if not len(records):
        return []
    # every cell is reported (its n beside it); completeness and eligibility decide
    # only the default (select_setting)
    table = ablation_table(records)
    complete = table.groupby(SETTING)["n_total"].transform("min") >= min_images
    partial = table[~complete]
    write_csv(table, out / "tables" / "uni_ablation.csv")
    partial_file = out / "tables" / "uni_ablation_partial.csv"
    partial_file.unlink(missing_ok=True)
    lines = [
        "One UNI setting per run on the development split (`make ablation`; table "
        f"`tables/uni_ablation.csv`, columns {', '.join(SETTING)}, metric, mean, ci_low, "
        f"ci_high, n, n_total). Centre: {CENTRE}; each other axis varied around it.", "",
    ]
    if len(partial):
        write_csv(partial, partial_file)
        unfinished = partial.groupby(SETTING)["n_total"].min().reset_index()
        lines += [f"Not complete yet (fewer than {min_images} images; resume with `make "
                  "ablation`; shown in every table with their n, never selected): "
                  + "; ".join(f"{r.norm} {r.eps_255:g}/255 {r.variant} {r.search} "
                              f"T={r.pgd_steps} ({r.n_total} images)"
                              for r in unfinished.itertuples()) + ".", ""]
    for metric in FIGURE_METRICS:
        if metric in set(table["metric"]):
            name = "uni_ablation_" + metric.replace("@", "_at_").replace("-", "_minus_")
            figure = ablation_figure(table, metric, out / "figures" / f"{name}.png")
            lines.append(f"![{metric}]({figure.relative_to(out)})")
    index = ["norm", "eps_255", "variant", "search", "pgd_steps", "kl_direction"]
    wide = table[table["metric"].isin(FIGURE_METRICS)].pivot_table(
        index=index, columns="metric", values="mean")
    n = table.groupby(index)["n"].min()
    wide = wide.assign(n=n).round(3).reset_index()
    paper = (wide[list(PAPER_CELL)] == pd.Series(PAPER_CELL)).all(axis=1)
    wide.insert(0, "cell", paper.map({True: "uni_paper", False: ""}))
    wide = wide.to_markdown(index=False)
    write_text(out / "tables" / "uni_ablation.md", wide + "\n")
    cache = Path(results_dir) / "tables" / FEATURELESS_FILE
    selection = select_setting(records, pd.read_csv(cache) if cache.is_file() else None)
    write_csv(selection, out / "tables" / "uni_ablation_selection.csv")
    return [*lines, "", *selection_lines(selection),
            "Means per setting (n: the fewest images of any metric in the row):", "", wide, ""]


USAGE = ("usage: python -m uni.analysis.ablation select RESULTS_DIR [IMAGE_FOLDER]\n"
         "       python -m uni.analysis.ablation overrides RESULTS_DIR ENTRY")


def select_arguments(argv: list[str], experiment: str = EXPERIMENT) -> tuple[str, str]:
    """``select``'s results folder and image folder (``argv``: ``RESULTS_DIR
    [IMAGE_FOLDER]``; the folder from ``UNI_DEV_DATA`` when not given), or a one-line
    :class:`SystemExit`: no runs of ``experiment`` with records there, or no such folder."""
    import os

    results_dir = argv[0]
    folder = argv[1] if len(argv) == 2 else os.environ.get("UNI_DEV_DATA")
    if not ablation_runs(results_dir, experiment):
        raise SystemExit(f"error: {results_dir} holds no {experiment} runs with records "
                         f"(expected {Path(results_dir) / experiment}/<run>/records.parquet)")
    if not folder:  # the development split's folder: conf/paths/default.yaml
        raise SystemExit("error: IMAGE_FOLDER is not given: pass it or set UNI_DEV_DATA=PATH")
    if not Path(folder).is_dir():
        raise SystemExit(f"error: IMAGE_FOLDER {folder} is not a directory")
    return results_dir, folder


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "overrides":
        try:
            print(" ".join(selected_overrides(sys.argv[2], sys.argv[3])))
        except ValueError as error:
            sys.exit(str(error))
        sys.exit(0)
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "select":
        sys.exit(USAGE)
    chosen = check_hardest(*select_arguments(sys.argv[2:]))
    print("\n".join(selection_lines(chosen)))

"""experiment=protocol_sensitivity (issue 15): per-entry ``output``, the score memo shared
by entries that perturb the same images, the ``protocol_grid`` expansion, and the rank
table and figure."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.analysis.protocol_sensitivity import (
    identical_fills,
    merge_identical_fills,
    protocol_table,
    rank_matrix,
    summary_line,
    verdict_flips,
    verdict_table,
    write_protocol_sensitivity,
)
from uni.data.base import Sample
from uni.engine.checks import check_config
from uni.engine.identity import RecordKeys, record_keys
from uni.engine.job import Job
from uni.engine.loop import batch_rows
from uni.errors import ConfigError
from uni.figure_data import FigureStore
from uni.methods import explain
from uni.metrics import check_options, deletion, insertion, mufidelity
from uni.metrics.score_cache import ScoreCache
from uni.protocol_grid import expand_protocol_grid, parse_entry_name
from uni.records import RecordStore
from uni.run import run_config as run

ROOT = Path(__file__).resolve().parents[1]
FILLS = ["black", "grey", "model_zero", "blur", "mean"]


@pytest.fixture
def batch(resnet):
    """Three random 64 px images (at 32 px the random ResNet's scores barely move), the
    resnet fixture's predicted classes and 2-step IG (black) attributions."""
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = resnet(x).argmax(-1)
    attributions = explain(resnet, x, target, "ig_black", steps=2).attributions
    return x, target, attributions, ["a", "b", "c"]


def _job(model, metrics: dict, tmp_path: Path, output: str = "prob") -> Job:
    keys = RecordKeys({"ig_black": {entry: f"h-{entry}" for entry in metrics}},
                      {"ig_black": "h0"})
    return Job(
        model=model, device=torch.device("cpu"), methods={"ig_black": {"steps": 2}},
        kinds={"ig_black": "ig_black"}, keys=keys, metrics=metrics, eval_batch=16,
        split="test", seed=0, output=output, target="prediction",
        figures=FigureStore(tmp_path, [], [], keys.figures()),
    )


def _values(rows: list[dict]) -> dict[str, torch.Tensor]:
    frame = pd.DataFrame(rows).sort_values("image_id")
    return {m: torch.tensor(g["value"].to_numpy(), dtype=torch.float32)
            for m, g in frame.groupby("metric")}


# ------------------------------------------------------------- (a) per-entry output


def test_an_entrys_output_wins_over_the_runs(resnet, batch, tmp_path):
    x, target, attributions, ids = batch
    mufi = {"metric": "mufidelity", "grid": 3, "subsets": 8, "masks": "bernoulli"}
    metrics = {
        "mufi_run": mufi, "mufi_logit": {**mufi, "output": "logit"},
        "del_run": {"metric": "deletion", "steps": 4},
        "del_logit": {"metric": "deletion", "steps": 4, "output": "logit"},
        "ins_prob": {"metric": "insertion", "steps": 4, "output": "prob"},
    }
    samples = [Sample(i, image) for i, image in zip(ids, x)]
    rows, _ = batch_rows(_job(resnet, metrics, tmp_path, output="prob"), RecordStore(tmp_path),
                         samples)
    values = _values(rows)
    options = {"batch_size": 16}
    expected = {
        "mufi_run": mufidelity(resnet, x, attributions, target, grid=3, subsets=8,
                               masks="bernoulli", image_ids=ids, output="prob", **options),
        "mufi_logit": mufidelity(resnet, x, attributions, target, grid=3, subsets=8,
                                 masks="bernoulli", image_ids=ids, output="logit", **options),
        "del_run": deletion(resnet, x, attributions, target, steps=4, output="prob", **options),
        "del_logit": deletion(resnet, x, attributions, target, steps=4, output="logit",
                              **options),
        "ins_prob": insertion(resnet, x, attributions, target, steps=4, output="prob",
                              **options),
    }
    for name, value in expected.items():
        torch.testing.assert_close(values[name], value, atol=1e-5, rtol=1e-5, msg=name)
    assert not torch.allclose(values["mufi_run"], values["mufi_logit"])
    assert not torch.allclose(values["del_run"], values["del_logit"])
    # a logit run (the methods explain the logit): the entry without its own output
    # follows the run, the other keeps its own
    metrics = {"del_run": metrics["del_run"], "del_prob": {**metrics["del_run"], "output": "prob"}}
    rows, _ = batch_rows(_job(resnet, metrics, tmp_path / "l", output="logit"),
                         RecordStore(tmp_path / "l"), samples)
    values = _values(rows)
    logit_attributions = explain(resnet, x, target, "ig_black", steps=2, output="logit")
    for name, output in (("del_run", "logit"), ("del_prob", "prob")):
        torch.testing.assert_close(values[name], deletion(
            resnet, x, logit_attributions.attributions, target, steps=4, output=output,
            **options), atol=1e-5, rtol=1e-5, msg=name)


def test_output_option_is_checked_and_hashed():
    check_options("mufidelity", {"output": "logit"})
    check_options("insertion", {"metric": "insertion", "output": "prob"})
    with pytest.raises(ConfigError, match="output='raw'"):
        check_options("deletion", {"output": "raw"})
    with pytest.raises(ConfigError, match="unknown option"):
        check_options("stability", {"output": "logit"})  # methods explain the run's output
    cfg = {"model": {}, "seed": 0, "output": "prob", "target": "prediction",
           "method": {"ig_black": {}}, "eval": {"d": {"metric": "deletion"}}}
    logit = {**cfg, "eval": {"d": {"metric": "deletion", "output": "logit"}}}
    assert record_keys(cfg, {}).entries != record_keys(logit, {}).entries


# ------------------------------------------------------------- the score memo


def test_cache_shares_perturbed_images_and_keeps_the_values(resnet, batch):
    x, target, attributions, ids = batch
    n, cache = len(ids), ScoreCache()
    common = {"batch_size": 16, "cache": cache}
    coarse_alone = deletion(resnet, x, attributions, target, steps=10, batch_size=16)
    fine = deletion(resnet, x, attributions, target, steps=100, **common)
    assert cache.computed == n * 100  # every step but the unperturbed start
    coarse = deletion(resnet, x, attributions, target, steps=10, output="logit", **common)
    coarse_prob = deletion(resnet, x, attributions, target, steps=10, **common)
    assert cache.computed == n * 100  # 10 of the 100 steps, both outputs: nothing new
    torch.testing.assert_close(coarse_prob, coarse_alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        coarse, deletion(resnet, x, attributions, target, steps=10, output="logit",
                         batch_size=16), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        fine, deletion(resnet, x, attributions, target, steps=100, batch_size=16))
    # insertion and another fill are other images
    insertion(resnet, x, attributions, target, steps=10, canvas="black", **common)
    assert cache.computed == n * 100 + n * 10
    deletion(resnet, x, attributions, target, steps=10, fill="grey", **common)
    assert cache.computed == n * 100 + n * 20
    # fills are keyed by their pixels: 0.5 is grey (as model_zero is for a mean-0.5 model)
    deletion(resnet, x, attributions, target, steps=10, fill=0.5, **common)
    assert cache.computed == n * 100 + n * 20
    # MuFidelity: both correlations, both outputs and another method's attributions share
    # the perturbed images (they depend on the image and its subsets only)
    before = cache.computed
    mufi = {"grid": 3, "subsets": 16, "masks": "bernoulli", "image_ids": ids}
    pearson = mufidelity(resnet, x, attributions, target, correlation="pearson", **mufi,
                         **common)
    assert cache.computed == before + n * 16
    other = torch.randn_like(attributions)
    for correlation, output, attr in itertools.product(
            ("pearson", "spearman"), ("prob", "logit"), (attributions, other)):
        mufidelity(resnet, x, attr, target, correlation=correlation, output=output, **mufi,
                   **common)
    assert cache.computed == before + n * 16
    torch.testing.assert_close(
        pearson, mufidelity(resnet, x, attributions, target, batch_size=16, **mufi))
    # a deletion curve depends on the attributions: a new order is new images
    deletion(resnet, x, other, target, steps=10, **common)
    assert cache.computed == before + n * 16 + n * 10


# ------------------------------------------------------------- (b) the grid expansion

BASE = {
    "mufidelity": {"metric": "mufidelity", "subsets": 200, "masks": "bernoulli",
                   "fill": "model_zero", "correlation": "spearman", "nan_to_zero": True},
    "deletion": {"metric": "deletion", "steps": 10, "fill": "model_zero"},
    "insertion": {"metric": "insertion", "steps": 10, "canvas": "model_zero"},
    "robustness": {"metric": "robustness", "attack": "random"},
    "batch_size": 16,
}
GRID = {"fills": FILLS, "correlations": ["pearson", "spearman"], "steps": [10, 100],
        "outputs": ["prob", "logit"]}


def test_protocol_grid_expands_into_one_entry_per_protocol():
    cfg = {"output": "prob", "eval": BASE, "protocol_grid": GRID}
    assert expand_protocol_grid({**cfg, "protocol_grid": None}) == {**cfg, "protocol_grid": None}
    expanded = expand_protocol_grid(cfg)["eval"]
    expected = {
        *(f"mufidelity__{f}__{c}__{o}" for f, c, o in itertools.product(
            FILLS, GRID["correlations"], GRID["outputs"])),
        *(f"{m}__{f}__{s}__{o}" for m, f, s, o in itertools.product(
            ("deletion", "insertion"), FILLS, GRID["steps"], GRID["outputs"])),
    }
    assert len(expected) == 60
    assert set(expanded) == expected | {"robustness", "batch_size"}
    assert expanded["robustness"] == BASE["robustness"] and expanded["batch_size"] == 16
    assert expanded["mufidelity__blur__pearson__logit"] == {
        **BASE["mufidelity"], "fill": "blur", "correlation": "pearson", "output": "logit"}
    assert expanded["insertion__mean__100__prob"] == {
        **BASE["insertion"], "canvas": "mean", "steps": 100, "output": "prob"}
    assert parse_entry_name("deletion__grey__100__logit") == {
        "metric": "deletion", "fill": "grey", "correlation_or_steps": "100", "output": "logit"}
    assert parse_entry_name("robustness_random_spearman") is None
    # a list left out keeps the entry's value (the run's output); numbers make safe names
    small = expand_protocol_grid({**cfg, "output": "logit",
                                  "protocol_grid": {"fills": ["black", 0.25]}})["eval"]
    assert {"mufidelity__0p25__spearman__logit", "deletion__black__10__logit"} <= set(small)
    assert small["mufidelity__0p25__spearman__logit"]["fill"] == 0.25
    for bad in ({"fill": ["black"]}, {"steps": []}, {"fills": ["black", "black"]},
                {"fills": ["a b"]}, ["black"]):
        with pytest.raises(ConfigError, match="protocol_grid"):
            expand_protocol_grid({**cfg, "protocol_grid": bad})


def test_experiment_config_expands_to_a_valid_run():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(
            compose("config", overrides=["experiment=protocol_sensitivity",
                                         "data.root=dev"]), resolve=True)
    assert cfg["data"]["name"] == "folder" and cfg["data"]["limit"] == 20
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        faithfulness = compose("config", overrides=["experiment=faithfulness"])
    assert list(cfg["method"]) == list(faithfulness["method"])  # every method, floors too
    expanded = expand_protocol_grid(cfg)
    check_config(expanded)
    entries = {k: v for k, v in expanded["eval"].items() if isinstance(v, dict)}
    assert len(entries) == 80  # MuFidelity 5 x 2 x 2 x 2 masks, deletion, insertion 5 x 2 x 2
    mufi = [v for v in entries.values() if v["metric"] == "mufidelity"]
    assert {v["masks"] for v in mufi} == {"bernoulli", "exact"}
    assert all(v["subsets"] == 200 for v in mufi)  # paper
    bad = {**cfg, "protocol_grid": {**cfg["protocol_grid"], "fills": ["purple"]}}
    with pytest.raises(ConfigError, match="mufidelity__purple__pearson__prob"):
        check_config(expand_protocol_grid(bad))


def test_run_expands_the_grid_and_records_entry_names(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=[
            "model=resnet18_random", "data=embedded", "data.limit=1", "method=[ig_black]",
            "attribution.steps=2", "eval=[mufidelity,deletion]", "eval.mufidelity.subsets=4",
            "eval.mufidelity.grid=3", "device=cpu"]), resolve=True)
    cfg["protocol_grid"] = {"fills": ["black"], "outputs": ["prob", "logit"]}
    run(cfg, tmp_path)
    records = RecordStore(tmp_path).load()
    assert set(records["metric"]) == {
        "mufidelity__black__spearman__prob", "mufidelity__black__spearman__logit",
        "deletion__black__10__prob", "deletion__black__10__logit"}


# ------------------------------------------------------------- (c, d) table and figure

PROTOCOLS = ["mufidelity__black__pearson__prob", "deletion__black__10__prob",
             "deletion__blur__100__logit", "insertion__mean__100__logit"]


def synthetic_records(images: int = 6) -> pd.DataFrame:
    """Method ``best`` is best under every protocol (highest MuFidelity and insertion,
    lowest deletion), ``worst`` worst; ``mid`` in between, except under deletion with
    blur, where it is best."""
    level = {"best": 0.9, "mid": 0.5, "worst": 0.1}
    rows = []
    for protocol, (method, value), i in itertools.product(PROTOCOLS, level.items(),
                                                          range(images)):
        if protocol.startswith("deletion"):
            value = 1 - value  # lower is better
            if "blur" in protocol and method == "mid":
                value = 0.0
        rows.append({"image_id": f"img{i}", "model": "m", "method": method, "metric": protocol,
                     "value": value + 0.01 * i, "config_hash": method, "seed": 0})
    rows.append({"image_id": "img0", "model": "m", "method": "best", "metric": "skipped",
                 "value": float("nan"), "config_hash": "best", "seed": 0})
    rows.append({"image_id": "img0", "model": "m", "method": "worst",
                 "metric": "robustness_random_spearman", "value": 1.0, "config_hash": "worst",
                 "seed": 0})
    return pd.DataFrame(rows)


def test_table_ranks_each_method_within_each_protocol():
    table = protocol_table(synthetic_records())
    assert {"metric", "fill", "correlation_or_steps", "output", "method", "mean", "ci_low",
            "ci_high", "n", "rank"} <= set(table.columns)
    assert list(dict.fromkeys(table["protocol"])) == PROTOCOLS  # metric, fill, steps order
    assert len(table) == len(PROTOCOLS) * 3 and (table["n"] == 6).all()
    assert ((table["ci_low"] <= table["mean"]) & (table["mean"] <= table["ci_high"])).all()
    rank = table.set_index(["protocol", "method"])["rank"]
    for protocol in PROTOCOLS:
        expected = {"best": 1, "mid": 2, "worst": 3}
        if protocol == "deletion__blur__100__logit":
            expected = {"mid": 1, "best": 2, "worst": 3}
        assert {m: rank[(protocol, m)] for m in expected} == expected, protocol
    row = table[(table["protocol"] == "deletion__blur__100__logit")].iloc[0]
    assert (row["metric"], row["fill"], row["correlation_or_steps"], row["output"]) == (
        "deletion", "blur", "100", "logit")
    assert list(rank_matrix(table).columns) == ["best", "mid", "worst"]  # by mean rank
    line = summary_line(table)
    assert "best 1-2" in line and "worst 3-3" in line and "best 3" in line
    assert "Kendall's tau" in line and "min 0.33" in line


def test_write_protocol_sensitivity_writes_table_and_figure(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "report"
    RecordStore(run_dir).write(synthetic_records().to_dict("records"))
    written = write_protocol_sensitivity(run_dir, out)
    assert [p.relative_to(out).as_posix() for p in written] == [
        "tables/protocol_sensitivity.csv", "tables/protocol_sensitivity.md",
        "figures/protocol_sensitivity.png", "tables/protocol_verdicts.csv"]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written[2].stat().st_size > 1000
    csv = pd.read_csv(written[0])
    assert len(csv) == 12 and csv.loc[csv["rank"] == 1, "method"].value_counts()["best"] == 3
    text = written[1].read_text()
    assert "| deletion__blur__100__logit" in text and "rank range" in text
    assert "No UNI records" in text and pd.read_csv(written[3]).empty  # no "uni" method
    other = tmp_path / "other"
    RecordStore(other).write([{"image_id": "a", "model": "m", "method": "x",
                               "metric": "mufidelity", "value": 0.1, "config_hash": "h"}])
    assert write_protocol_sensitivity(other, tmp_path / "none") == []


def test_verdicts_follow_the_claims_rule_per_protocol_and_count_one_choice_flips():
    """UNI clearly best under the black fill, clearly worst under blur (deletion: lower
    is better, so its values are mirrored), level with the other method under grey; 12
    images with a per-image spread, so each clear case passes the Holm-Wilcoxon rule."""
    protocols = {  # protocol -> UNI's offset against "other" (in the better direction)
        "mufidelity__black__spearman__prob": 0.3, "mufidelity__blur__spearman__prob": -0.3,
        "mufidelity__grey__spearman__prob": 0.0, "mufidelity__black__pearson__prob": 0.3,
        "deletion__black__10__prob": 0.3, "deletion__blur__10__prob": -0.3,
    }
    rows = []
    for (protocol, offset), i in itertools.product(protocols.items(), range(12)):
        sign = -1 if protocol.startswith("deletion") else 1
        noise = 0.01 * ((i * 7) % 5 - 2)
        for method, value in (("uni", 0.5 + offset + noise), ("other", 0.5 - noise)):
            rows.append({"image_id": f"img{i}", "model": "m", "method": method,
                         "metric": protocol, "value": 0.5 + sign * (value - 0.5),
                         "config_hash": method, "seed": 0})
    verdicts = verdict_table(pd.DataFrame(rows)).set_index("protocol")
    assert verdicts["verdict"].to_dict() == {
        "mufidelity__black__pearson__prob": "holds", "mufidelity__black__spearman__prob": "holds",
        "mufidelity__grey__spearman__prob": "inconclusive",
        "mufidelity__blur__spearman__prob": "fails",
        "deletion__black__10__prob": "holds", "deletion__blur__10__prob": "fails"}
    assert (verdicts["n"] == 12).all()
    effect = verdicts.loc["deletion__blur__10__prob", "effect (UNI - strongest)"]
    assert effect.endswith("vs other (lower is better)")
    flips = verdict_flips(verdicts.reset_index()).set_index("choice")["differing"].to_dict()
    # fill: MuFidelity black/grey/blur (3 pairs, all differ) + deletion black/blur (1 pair)
    assert flips == {"fill": 4, "correlation_or_steps": 0, "output": 0, "masks": 0}
    pairs = verdict_flips(verdicts.reset_index()).set_index("choice")["pairs"].to_dict()
    assert pairs == {"fill": 4, "correlation_or_steps": 1, "output": 0, "masks": 0}


def test_masks_dimension_and_identical_fills_counted_once(tmp_path):
    """``masks`` adds a fifth part to MuFidelity's entries only; fills whose scores are
    identical everywhere (grey and model_zero on a model with mean 0.5) merge into one
    protocol, stated in the table, and the verdict counts run over distinct protocols."""
    cfg = {"output": "prob", "eval": {"mufidelity": {"metric": "mufidelity"},
                                      "deletion": {"metric": "deletion", "steps": 10}},
           "protocol_grid": {"fills": ["grey", "model_zero"], "masks": ["bernoulli", "exact"]}}
    names = sorted(expand_protocol_grid(cfg)["eval"])
    assert names == ["deletion__grey__10__prob", "deletion__model_zero__10__prob",
                     "mufidelity__grey__None__prob__bernoulli",
                     "mufidelity__grey__None__prob__exact",
                     "mufidelity__model_zero__None__prob__bernoulli",
                     "mufidelity__model_zero__None__prob__exact"]
    assert expand_protocol_grid(cfg)["eval"][names[3]]["masks"] == "exact"
    assert parse_entry_name(names[3])["masks"] == "exact"
    rows = []
    for i, method in itertools.product(range(6), ("uni", "other")):
        value = 0.5 + 0.1 * (method == "uni") + 0.01 * i
        for fill, masks in itertools.product(("grey", "model_zero", "black"),
                                             ("bernoulli", "exact")):
            shift = 0.05 if fill == "black" else 0.0
            rows.append({"image_id": f"img{i}", "model": "m", "method": method,
                         "metric": f"mufidelity__{fill}__spearman__prob__{masks}",
                         "value": value + shift, "config_hash": "h", "seed": 0})
    records = pd.DataFrame(rows)
    assert identical_fills(records) == {"m": [["grey", "model_zero"]]}
    merged, _ = merge_identical_fills(records)
    assert sorted(merged["metric"].unique()) == [
        "mufidelity__black__spearman__prob__bernoulli", "mufidelity__black__spearman__prob__exact",
        "mufidelity__grey=model_zero__spearman__prob__bernoulli",
        "mufidelity__grey=model_zero__spearman__prob__exact"]
    RecordStore(tmp_path / "run").write(rows)
    written = write_protocol_sensitivity(tmp_path / "run", tmp_path / "out")
    text = written[1].read_text()
    assert text.startswith("Fills that put identical pixels in, merged and counted once "
                           "(on m: grey = model_zero)")
    verdicts = pd.read_csv(written[3])
    assert len(verdicts) == 4 and set(verdicts["masks"]) == {"bernoulli", "exact"}

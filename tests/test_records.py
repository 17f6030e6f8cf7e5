import multiprocessing

import pandas as pd
import pytest

from uni.records import RecordStore, config_hash


def _rows(ids, method="ig_black", h="abc"):
    return [
        {"image_id": i, "split": "s", "model": "m", "method": method, "metric": "mufidelity",
         "value": float(n), "config_hash": h, "seed": 0}
        for n, i in enumerate(ids)
    ]


def test_config_hash_is_order_independent_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_store_resumes_and_never_duplicates(tmp_path):
    store = RecordStore(tmp_path)
    store.write(_rows(["b", "a"]))
    assert store.is_done("a", "ig_black", "abc") and not store.is_done("a", "uni", "abc")
    again = RecordStore(tmp_path)  # a new process
    assert again.is_done("b", "ig_black", "abc")
    again.write(_rows(["a"]))  # the same row written twice keeps one copy
    frame = again.consolidate()
    assert list(frame["image_id"]) == ["a", "b"]
    assert not list((tmp_path / "records.parts").glob("*.parquet"))
    assert pd.read_parquet(tmp_path / "records.parquet").equals(frame)


def _shard_writer(run_dir, shard: int, batches: int) -> None:
    for b in range(batches):  # a batch, then a consolidation, as a run ends
        RecordStore(run_dir).write(_rows([f"{shard}-{b}"]))
        RecordStore(run_dir).consolidate()


@pytest.mark.filterwarnings("error::UserWarning")  # forked writers too: no unreadable file
def test_shards_sharing_a_run_directory_lose_no_rows(tmp_path):
    """Cluster shards write into one run directory and consolidate as they finish: no
    process may rewrite ``records.parquet`` without another's rows, nor read a file that
    another is replacing."""
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_shard_writer, args=(tmp_path, s, 15)) for s in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    frame = RecordStore(tmp_path).consolidate()
    assert sorted(frame["image_id"]) == sorted(f"{s}-{b}" for s in range(4) for b in range(15))


def test_figure_data_of_shards_sharing_a_run_directory_is_merged(tmp_path):
    """Each shard saves its own images' figure data; another shard's stay, this
    process's images no longer among its figure images are dropped, and data of another
    config is never mixed in."""
    import torch

    from uni.figure_data import FigureStore

    hashes = {"ig_black": "h1"}

    def store(ids, own, config=hashes):
        figures = FigureStore(tmp_path, ids, own, config)
        for i in ids:
            figures.keep("images", "", i, torch.full((3, 2, 2), float(ord(i))))
            figures.keep("attributions", "ig_black", i, torch.full((3, 2, 2), 1.0))
        figures.save()
        return torch.load(tmp_path / "figures.pt", weights_only=True)

    store(["a"], ["a", "c"])
    saved = store(["b"], ["b", "d"])
    assert saved["image_ids"] == ["b", "a"] and saved["attributions"]["ig_black"].shape[0] == 2
    assert saved["images"][1, 0, 0, 0] == ord("a")
    assert store([], ["a", "b"])["image_ids"] == ["b", "a"]  # nothing kept: file unchanged
    assert store(["c"], ["a", "b", "c", "d"])["image_ids"] == ["c"]  # a and b: no longer figures
    assert FigureStore(tmp_path, ["c"], ["c"], {"ig_black": "other"}).kept == {}


def test_half_written_part_is_ignored(tmp_path):
    store = RecordStore(tmp_path)
    store.write(_rows(["a"]))
    (tmp_path / "records.parts" / "part-broken.parquet").write_bytes(b"PAR1\x00\x01")
    frame = RecordStore(tmp_path).load()
    assert list(frame["image_id"]) == ["a"]


def _faithfulness_run(run_dir, model: str, images: list[str]) -> None:
    rows = []
    for method, shift in (("ig_black", 0.0), ("uni", 0.2)):
        for n, image in enumerate(images):
            for metric, value in (("mufidelity", 0.1 * n + shift), ("deletion", 0.3 - shift),
                                  ("insertion", 0.5 + shift)):
                rows.append({"image_id": image, "split": "dev", "model": model,
                             "method": method, "metric": metric, "value": value,
                             "config_hash": model + method, "seed": 0})
    RecordStore(run_dir).write(rows)
    RecordStore(run_dir).consolidate()


def test_report_merges_another_models_run_of_the_same_experiment(tmp_path):
    """``faithfulness-<suffix>``: the same experiment on another model joins the
    model x method MuFidelity table, with n per cell, and gets its own deletion /
    insertion table (best within the model)."""
    from uni.analysis.report import build_report

    _faithfulness_run(tmp_path / "faithfulness", "m", ["a", "b", "c"])
    _faithfulness_run(tmp_path / "faithfulness-m2", "m2", ["a", "b"])
    _faithfulness_run(tmp_path / "faithfulness-again", "m", ["a", "b"])  # rows stored twice
    report = build_report(tmp_path).read_text()
    assert "3 images (0 skipped)" in report and "2 images (0 skipped)" in report
    assert "runs `faithfulness` and `faithfulness-again` both hold model m" in report
    mufidelity = pd.read_csv(tmp_path / "tables" / "mufidelity.csv")
    assert dict(mufidelity.groupby("model")["n"].max()) == {"m": 3, "m2": 2}
    for model, n in (("m", 3), ("m2", 2)):
        table = pd.read_csv(tmp_path / "tables" / f"deletion_insertion_{model}.csv")
        assert len(table) == 6 and (table["n"] == n).all()
        assert f"Model `{model}`:" in report
    assert not (tmp_path / "tables" / "deletion_insertion.csv").exists()


def test_report_from_a_small_faithfulness_run(tmp_path):
    """REPORT.md from stored records alone: the MuFidelity and deletion / insertion tables
    with n per cell, their CSV / Markdown files, and the experiments not run yet."""
    from uni.analysis.report import build_report

    _faithfulness_run(tmp_path / "faithfulness", "m", ["a", "b", "c"])
    report = build_report(tmp_path).read_text()
    assert "Not run yet (no records): robustness, stability, imagenet_c." in report
    assert "3 images (0 skipped)" in report
    mufidelity = (tmp_path / "tables" / "mufidelity.md").read_text()
    assert "**0.300 [" in mufidelity and "(3)" in mufidelity  # uni's mean, best, n = 3
    table = pd.read_csv(tmp_path / "tables" / "deletion_insertion.csv").set_index(
        ["method", "metric"])
    assert len(table) == 6 and (table["n"] == 3).all() and (table["n_total"] == 3).all()
    assert abs(table.loc[("uni", "insertion-deletion"), "mean"] - 0.6) < 1e-9
    assert "| uni " in report and "insertion-deletion" in report


def test_rekey_gives_rows_of_the_previous_per_method_keys_their_entry_keys(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from uni.config_dir import CONF_DIR
    from uni.engine.identity import data_identity, record_keys
    from uni.rekey import previous_keys, rekey

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["method=[ig_black,uni]",
                                           "eval=[mufidelity,robustness]"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    cfg = OmegaConf.to_container(cfg, resolve=True)
    old, new = previous_keys(cfg), record_keys(cfg, data_identity(cfg["data"]))
    rows = [{"image_id": "a", "split": "s", "model": "m", "method": method, "metric": metric,
             "value": 0.5, "config_hash": old[method], "seed": 0}
            for method in ("ig_black", "uni")
            for metric in ("mufidelity", "robustness_topk_spearman", "skipped")]
    rows.append({**rows[0], "config_hash": "another-config"})  # left as it is
    store = RecordStore(run)
    store.write(rows)
    assert "6 of 7 rows re-keyed" in rekey(run)
    frame = RecordStore(run).load().set_index(["method", "metric", "config_hash"])
    for method in ("ig_black", "uni"):
        entries = new.entries[method]
        for metric, key in (("mufidelity", entries["mufidelity"]),
                            ("robustness_topk_spearman", entries["robustness"]),
                            ("skipped", entries["mufidelity"]),
                            ("skipped", entries["robustness"])):
            assert (method, metric, key) in frame.index
    assert ("ig_black", "mufidelity", "another-config") in frame.index
    assert not (run / "records.parts").exists() or not any((run / "records.parts").iterdir())
    assert len(frame) == 9  # each skipped row once per entry
    assert "0 of 9 rows" in rekey(run)  # idempotent


def test_progress_counts_each_runs_images_per_method_against_its_selection(tmp_path):
    """`python -m uni.analysis.progress`: a run's fewest and most images of a method
    against its data.limit (interpolated from the profile, as runs store it); the runs of
    a sweep folder as one row."""
    import yaml

    from uni.analysis.progress import run_progress

    def run(path, limit, images_per_method):
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
            {"profile": {"images": {"faithfulness": limit}},
             "data": {"limit": "${profile.images.faithfulness}"}}))
        RecordStore(path).write([
            {"image_id": f"img{i}", "split": "s", "model": "m", "method": method,
             "metric": "mufidelity", "value": 0.5, "config_hash": method, "seed": 0}
            for method, images in images_per_method.items() for i in range(images)])

    run(tmp_path / "faithfulness", 3, {"a": 3, "b": 2})
    run(tmp_path / "sweep" / "eps=1", 2, {"uni": 2})
    run(tmp_path / "sweep" / "eps=2", 2, {"uni": 1})
    table = run_progress(tmp_path).set_index("run")
    assert table.loc["faithfulness", ["runs", "complete", "methods", "fewest", "most",
                                      "selected"]].tolist() == [1, 0, 2, 2, 3, 3]
    assert table.loc["sweep/*", ["runs", "complete", "fewest", "most"]].tolist() == [2, 1, 1, 2]


def test_a_tie_for_the_best_mean_is_bold_in_every_tied_row():
    from uni.analysis.tables import pivot, summarise

    records = pd.DataFrame([
        {"image_id": f"i{i}", "model": "m", "method": method, "metric": "mufidelity",
         "value": value}
        for i in range(3) for method, value in (("a", 0.5), ("b", 0.5), ("c", 0.2))])
    column = pivot(summarise(records)).iloc[:, 0]
    assert column["a"].startswith("**") and column["b"].startswith("**")
    assert not column["c"].startswith("**")


def test_run_facts_name_the_configs_and_the_tuned_settings(tmp_path):
    """A run directory several configs ran in says so, and names UNI's radius and the
    tuned baselines' options (a reader cannot tell them from the method names)."""
    import yaml

    from uni.analysis.sections import run_facts

    run = tmp_path / "faithfulness"
    (run / "configs").mkdir(parents=True)
    (run / "configs" / "a.yaml").write_text(yaml.safe_dump({"method": {
        "uni": {"eps": 0.76078, "norm": "l2"}, "ig_blur": {"sigma": 5.0},
        "ig_blur_tuned": {"kind": "ig_blur", "sigma": 20.0}}}))
    (run / "configs" / "b.yaml").write_text(yaml.safe_dump({"method": {"agi": {}}}))
    records = pd.DataFrame([{"image_id": "i", "model": "m", "split": "s", "method": method,
                             "metric": "mufidelity", "value": 0.1}
                            for method in ("uni", "ig_blur", "ig_blur_tuned", "agi")])
    facts = run_facts(run, records)
    assert "2 configs run here" in facts
    assert "tuned settings: uni eps=0.76078 norm=l2; ig_blur_tuned sigma=20.0." in facts

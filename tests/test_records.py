import pandas as pd

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


def test_half_written_part_is_ignored(tmp_path):
    store = RecordStore(tmp_path)
    store.write(_rows(["a"]))
    (tmp_path / "records.parts" / "part-broken.parquet").write_bytes(b"PAR1\x00\x01")
    frame = RecordStore(tmp_path).load()
    assert list(frame["image_id"]) == ["a"]


def test_report_from_a_small_faithfulness_run(tmp_path):
    """REPORT.md from stored records alone: the MuFidelity and deletion / insertion tables
    with n per cell, their CSV / Markdown files, and the experiments not run yet."""
    from uni.report import build_report

    rows = []
    for method, shift in (("ig_black", 0.0), ("uni", 0.2)):
        for n, image in enumerate(["a", "b", "c"]):
            for metric, value in (("mufidelity", 0.1 * n + shift), ("deletion", 0.3 - shift),
                                  ("insertion", 0.5 + shift)):
                rows.append({"image_id": image, "split": "dev", "model": "m", "method": method,
                             "metric": metric, "value": value, "config_hash": method,
                             "seed": 0})
    RecordStore(tmp_path / "faithfulness").write(rows)
    RecordStore(tmp_path / "faithfulness").consolidate()
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

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

"""benchmarks/experiments.py's result files: a partial run (``--only``) keeps what it did
not measure, but never from a run under other settings."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import experiments  # noqa: E402  benchmarks/experiments.py


def test_a_partial_run_keeps_the_other_benchmarks_of_the_same_settings(tmp_path):
    settings = {"profile": "quick", "data": "dev", "torch_threads": 1}
    path = tmp_path / "experiments-cpu-quick-only.json"
    path.write_text(json.dumps({**settings, "road": {"over_floor": 1.4, "date": "a"},
                                "sanity": {"over_floor": 1.2, "date": "a"},
                                "summary": {"road": 1.4, "sanity": 1.2}}))
    now = {**settings, "road": {"over_floor": 1.3, "date": "b"}}
    assert experiments.merged(path, now) == {
        **settings, "road": {"over_floor": 1.3, "date": "b"},
        "sanity": {"over_floor": 1.2, "date": "a"}}
    other = {**settings, "torch_threads": 2, "road": {"over_floor": 1.1, "date": "b"}}
    assert experiments.merged(path, other) == other
    assert experiments.merged(tmp_path / "absent.json", now) == now

"""benchmarks/device.py's own machinery (the measurements are checked by its dry run in
CI): time boxes, failure isolation and the sweep's batch choice."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import device  # noqa: E402  benchmarks/device.py (its sibling scripts on the path)


def test_a_failing_or_overrunning_section_is_recorded_and_the_run_goes_on():
    def fails():
        raise ValueError("no such model\nsecond line")

    slept = []

    def overruns():
        time.sleep(5)
        slept.append(True)  # reached only if the time box let the section run on
        return {"never": True}

    failed = device.measured(fails, 10)
    assert failed["status"] == "error" and failed["error"] == "ValueError: no such model"
    late = device.measured(overruns, 1.0)
    assert late["status"] == "timeout" and "never" not in late and not slept
    assert device.measured(lambda: {"x": 1}, 5) | {"seconds": 0, "peak_memory_mb": 0} == {
        "status": "ok", "error": None, "x": 1, "seconds": 0, "peak_memory_mb": 0}
    assert device.measured(lambda: {"x": 1}, 0.5)["status"] == "skipped"
    results = {"a": failed, "b": {"m1": late, "m2": {"status": "ok"}}, "dry": True}
    assert device.failures(results) == ["a: ValueError: no such model",
                                        "b/m1: OutOfTime: time box of 1 s ran out"]


def test_the_sweep_chooses_the_smallest_batch_within_five_percent_of_the_fastest():
    rows = [{"batch": 8, "fwd_ms": 2.0}, {"batch": 16, "fwd_ms": 1.04},
            {"batch": 32, "fwd_ms": 1.0}, {"batch": 64, "out_of_memory": True}]
    assert device.chosen_batch(rows, "fwd_ms") == 16

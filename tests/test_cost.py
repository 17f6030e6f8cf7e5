"""What each method costs (uni.cost): the runner's cost.json from its stage clock and pass
log, and the REPORT's table (numbers from the file, n/a without it)."""

import json

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.config_dir import CONF_DIR
from uni.cost import COLUMNS, COST_FILE, cost_lines, method_costs
from uni.run import run_config as run

STEPS, SUBSETS = 2, 4


def _cfg(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=[
            "model=resnet18_random", "data=embedded", "data.limit=2", "method=[ig_black,uni]",
            f"attribution.steps={STEPS}", "method.uni.pgd_steps=2",
            f"eval.mufidelity.subsets={SUBSETS}", "eval.mufidelity.grid=3", "device=cpu",
            "attribution_store=off", *overrides]), resolve=True)


def test_a_run_logs_passes_and_seconds_per_method_and_a_resume_adds_none(tmp_path):
    run(_cfg(), tmp_path)
    cost = json.loads((tmp_path / COST_FILE).read_text())
    stages = {(s["method"], s["stage"]): s for s in cost["stages"]}
    ig = stages[("ig_black", "explain/ig_black")]
    assert ig["images"] == 2 and ig["seconds"] > 0 and ig["cpu_seconds"] > 0
    # IG: one input gradient per image and step; UNI also its search's and unlearning's
    assert ig["gradient_rows"] == 2 * STEPS
    # UNI: its integral, search and unlearning step (on the model as trained) per image
    assert stages[("uni", "explain/uni")]["gradient_rows"] >= 2 * (STEPS + 2 + 1)
    scored = stages[("ig_black", "metric/mufidelity")]
    assert scored["images"] == 2 and scored["forward_rows"] >= 2 * SUBSETS
    assert scored["gradient_rows"] == 0
    assert [d.split(" ")[0] for d in cost["devices"]] == ["cpu"]

    run(_cfg(), tmp_path)  # everything stored: nothing explained or scored again
    again = {(s["method"], s["stage"]): s for s in
             json.loads((tmp_path / COST_FILE).read_text())["stages"]}
    assert again[("ig_black", "explain/ig_black")] == ig

    records = pd.read_parquet(tmp_path / "records.parquet")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in "\n".join(cost_lines(tmp_path, records)).splitlines()
            if line.startswith(("| ig_black", "| uni"))}
    assert rows["ig_black"][1] == str(STEPS)  # forward+backward per image
    assert all(cell != "n/a" for cells in rows.values() for cell in cells)


def test_per_image_figures_are_the_stage_totals_over_their_images():
    cost = {"devices": {"cpu": 10.0}, "stages": [
        {"method": "a", "stage": "explain/a", "seconds": 4.0, "cpu_seconds": 2.0, "images": 2,
         "forward_rows": 2, "gradient_rows": 64},
        {"method": "a", "stage": "metric/mufidelity", "seconds": 1.0, "cpu_seconds": 1.0,
         "images": 2, "forward_rows": 400, "gradient_rows": 0},
        {"method": "a", "stage": "metric/deletion", "seconds": 3.0, "cpu_seconds": 0.5,
         "images": 1, "forward_rows": 10, "gradient_rows": 0},
        # logged before CPU seconds were kept
        {"method": "b", "stage": "metric/mufidelity", "seconds": 1.0, "images": 1,
         "forward_rows": 200, "gradient_rows": 0},
        {"method": "", "stage": "predict", "seconds": 9.0, "images": 2,
         "forward_rows": 2, "gradient_rows": 0},
    ]}
    table = method_costs(cost, ["a", "b"])
    a = table.loc["a"]
    assert a["explain: forward+backward / image"] == 32 and a["explain: forward / image"] == 1
    assert a["explain: s / image"] == 2.0
    assert a["metrics: forward / image"] == 200 + 10 and a["metrics: s / image"] == 0.5 + 3.0
    assert a["total: s / image"] == 5.5
    assert a["total: CPU s / image"] == 1.0 + 0.5 + 0.5
    # b's explanations came from a store: no explain figures, its metrics' only
    assert table.loc["b"].isna()["explain: s / image"]
    assert table.loc["b", "total: s / image"] == 1.0
    assert table.loc["b"].isna()["total: CPU s / image"]  # never guessed


def test_a_row_from_before_cpu_seconds_stays_without_them(tmp_path):
    """A resumed run adds wall seconds to an older row but no CPU seconds, which would
    otherwise cover only part of its images."""
    from uni.cost import save_cost
    from uni.profiling import StageClock, StageCost

    (tmp_path / COST_FILE).write_text(json.dumps({"devices": {}, "stages": [
        {"method": "a", "stage": "explain/a", "seconds": 4.0, "images": 2,
         "forward_rows": 2, "gradient_rows": 64}]}))
    clock = StageClock()
    clock.costs[("a", "explain/a")] = StageCost(2.0, 1.5, 1, 1, 32)
    clock.costs[("a", "metric/road")] = StageCost(1.0, 0.5, 1, 7, 0)
    save_cost(tmp_path, clock, "cpu")
    stages = {(s["method"], s["stage"]): s for s in
              json.loads((tmp_path / COST_FILE).read_text())["stages"]}
    assert stages[("a", "explain/a")]["seconds"] == 6.0
    assert stages[("a", "explain/a")]["images"] == 3
    assert "cpu_seconds" not in stages[("a", "explain/a")]
    assert stages[("a", "metric/road")]["cpu_seconds"] == 0.5


def test_a_run_without_cost_file_gets_na_not_numbers(tmp_path):
    records = pd.DataFrame({"method": ["ig_black", "uni", "ig_black"]})
    lines = "\n".join(cost_lines(tmp_path, records)).splitlines()
    body = [line for line in lines if line.startswith(("| ig_black", "| uni"))]
    assert len(body) == 2
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        assert cells == ["n/a"] * len(COLUMNS)
    assert any(f"no `{COST_FILE}`" in line for line in lines)


def test_the_costs_are_saved_with_every_batch_and_counted_once(tmp_path, monkeypatch):
    """A run killed between batches (a session's end) keeps the costs of the batches whose
    records it wrote; the final save adds only what came after."""
    import uni.engine.loop as loop

    seen, original = [], loop.batch_rows

    def batch_rows(job, store, good):
        path = tmp_path / COST_FILE
        if path.exists():  # the second batch: the first one's costs are on disk already
            stages = {(s["method"], s["stage"]): s for s in json.loads(path.read_text())["stages"]}
            seen.append(stages[("ig_black", "explain/ig_black")]["images"])
        return original(job, store, good)

    monkeypatch.setattr(loop, "batch_rows", batch_rows)
    run(_cfg("data.batch_size=1"), tmp_path)
    assert seen == [1]
    stages = {(s["method"], s["stage"]): s for s in
              json.loads((tmp_path / COST_FILE).read_text())["stages"]}
    assert stages[("ig_black", "explain/ig_black")]["images"] == 2
    assert stages[("ig_black", "explain/ig_black")]["gradient_rows"] == 2 * STEPS

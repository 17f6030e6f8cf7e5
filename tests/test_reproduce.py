"""The committed default results are what `make reproduce` computes today: every record
its runs would write is stored under the key the quick profile composes now (so a fresh
clone's `make reproduce` recomputes nothing), and no other (no model runs here: keys and
image ids only)."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.config_dir import CONF_DIR
from uni.engine.checks import check_config
from uni.engine.identity import data_identity, keyed_config, record_keys
from uni.engine.job import run_dataset
from uni.experiments import EXPERIMENTS
from uni.records import RecordStore, has_records

RESULTS = Path(__file__).resolve().parents[1] / "results"
# the preprocessing does not change which images a dataset holds
DATA_CONFIG = {"input_size": (3, 224, 224)}


def composed(overrides: list[str]) -> dict:
    """The keyed config a run with these command-line overrides composes today."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return keyed_config(OmegaConf.to_container(cfg, resolve=True))


def reproduce_config(experiment: str) -> dict:
    """One job of the Makefile's `reproduce` target (PROFILE=quick, no DATA or MODEL)."""
    return composed(["profile=quick", f"experiment={experiment}",
                     "attribution_store=results/attributions"])


@pytest.mark.parametrize("experiment", [e.name for e in EXPERIMENTS.values() if e.reproduce])
def test_committed_results_are_what_make_reproduce_computes(experiment):
    cfg = reproduce_config(experiment)
    keys = record_keys(cfg, data_identity(cfg["data"]))
    dataset, _ = run_dataset(cfg["data"], DATA_CONFIG)
    store = RecordStore(RESULTS / experiment)
    missing = [(image_id, method, entry)
               for image_id, *_ in dataset.items
               for method, entries in keys.entries.items()
               for entry, key in entries.items()
               if not store.is_done(image_id, method, key)]
    pairs = len(dataset.items) * sum(map(len, keys.entries.values()))
    assert not missing, (
        f"results/{experiment}: `make reproduce` would recompute {len(missing)} of {pairs} "
        f"image x method x metric records (e.g. {missing[0]}); regenerate results/ with "
        f"`make reproduce` and commit it")
    stale = set(store.load()["config_hash"]) - keys.all()
    assert not stale, (
        f"results/{experiment} holds records of {len(stale)} config(s) that `make reproduce` "
        f"no longer writes; its report would pool them: regenerate results/ from scratch")


def _tuning_runs():
    """The committed UNI ablation's run folders: the regeneration's while it is under way
    (results/dev-next), then results/dev's."""
    for results in (RESULTS / "dev-next", RESULTS / "dev"):
        runs = sorted((results / "uni_ablation").glob("*/.hydra/overrides.yaml"))
        if runs:
            return [path.parents[1] for path in runs]
    return []


@pytest.mark.parametrize("run", _tuning_runs(), ids=lambda run: run.name)
def test_the_ablation_runs_compose_what_they_hold(run):
    """`make ablation` composes the committed runs' settings today: a folder is named by its
    overrides only, so its setting must not follow a default that the ablation itself
    changes (the centre is pinned in conf/experiment/uni_ablation.yaml)."""
    cfg = composed(list(OmegaConf.load(run / ".hydra" / "overrides.yaml")))
    keys = record_keys(cfg, data_identity(cfg["data"]))
    stored = set(RecordStore(run, readonly=True).load()["config_hash"])
    assert keys.all() <= stored, f"{run.name}: composes {keys.all() - stored}, holds {stored}"


ROOT = RESULTS.parent
# stands in for a model's own UNI radius while that model's sweep has no selection yet
STAND_IN = ["method.uni_own_eps.eps=0.76078", "method.uni_own_eps.norm=l2"]


def dev_results_jobs() -> list[tuple[str, list[str]]]:
    """(run directory, overrides) of each `uni.run` command `make dev-results` runs: a
    model's own UNI radius as `ablation overrides` gives it (STAND_IN while none is
    selected), a sweep's first value, Hydra's own options left out."""
    from uni.analysis.ablation import selected_overrides

    text = subprocess.run(["make", "-n", "dev-results"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.replace("\\\n", " ")
    jobs = []
    for line in text.splitlines():
        if "-m uni.run" not in line:
            continue
        own = re.search(r"ablation overrides (\S+) (\S+)\)", line)
        try:
            radius = selected_overrides(ROOT / own[1], own[2]) if own else []
        except ValueError:
            radius = STAND_IN
        words = shlex.split(line.split(" && ")[-1])
        words = words[words.index("uni.run") + 1:]
        run_dir = next(w.split("=", 1)[1] for w in words
                       if w.startswith(("hydra.run.dir=", "hydra.sweep.dir=")))
        overrides = [w.split(",")[0] if w.startswith("seed=") else w for w in words
                     if not w.startswith(("hydra.", "--"))]
        jobs.append((run_dir, [o for w in overrides for o in (radius if w == "$OWN" else [w])]))
    return jobs


def test_make_dev_results_composes_every_run_and_resumes_the_committed_records(monkeypatch):
    """Every command of `make dev-results` composes a config the runner accepts (a method
    renamed in conf/ fails here, not sittings into the regeneration), runs on the
    evaluation subset, and the regeneration's committed records are under keys its
    commands write: it resumes them, it does not recompute them."""
    monkeypatch.chdir(ROOT)  # data.root is relative, as the Makefile passes it
    jobs = dev_results_jobs()
    assert len(jobs) >= 10 and any("model=efficientnet_lite2" in o for _, o in jobs)
    written: dict[str, set] = {}
    for run_dir, overrides in jobs:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
        cfg["experiment"] = next(o.split("=")[1] for o in overrides
                                 if o.startswith("experiment="))
        check_config(cfg)
        assert cfg["profile"]["images"]["faithfulness"] == 300
        assert cfg["data"]["subset"] in (None, "eval"), run_dir  # a folder's default: eval
        if not set(STAND_IN) <= set(overrides):
            keys = record_keys(keyed_config(cfg), data_identity(cfg["data"]))
            written.setdefault(run_dir, set()).update(keys.all())
    # the runs begun so far (the others have no records to compare yet)
    begun = [run_dir for run_dir in written if has_records(ROOT / run_dir)]
    assert any(run_dir.endswith("/faithfulness") for run_dir in begun), begun
    for run_dir in begun:
        stored = set(RecordStore(ROOT / run_dir, readonly=True).load()["config_hash"])
        assert stored <= written[run_dir], (
            f"{run_dir} holds records of {len(stored - written[run_dir])} config(s) `make "
            f"dev-results` no longer writes")

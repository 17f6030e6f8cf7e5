"""Hostile input, round two (issue 32): explanations that depended on their batch, models
in the wrong mode, options the Python API ignored, stale results from changed inputs,
unreadable records, writes outside the run. Each case ends in the correct value, a
one-line error with a non-zero exit, or a visible entry; tests over the method registry
cover a method as soon as it registers."""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_dashboard import offline_wandb  # noqa: F401 (a fixture)
from uni.errors import ConfigError, InputError
from uni.methods import METHODS, attribute, explain, get_spec


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().sum() / b.abs().sum().clamp_min(1e-30))


def cheap_options(method: str, references: torch.Tensor) -> dict:
    """The fewest steps, draws and search iterations each method takes (by its option
    names, so a newly registered method gets them too); Expected Gradients draws from a
    fixed tensor of references (``reference: batch`` is batch-dependent by definition)."""
    settings = get_spec(method).option_settings()
    cheap = {"steps": 2, "pgd_steps": 2, "samples": 2, "reference": references,
             "classes": 2, "attack_steps": 3, "refine": 3}
    return {k: v for k, v in cheap.items() if k in settings}


@pytest.fixture(scope="module")
def three_photos(lite0):
    from uni.data import build_dataset

    dataset = build_dataset("embedded", lite0.data_config, limit=5)
    samples = [dataset[i] for i in range(5)]
    # at 96 px (the model takes any size) to keep the test cheap on a CPU
    x = torch.nn.functional.interpolate(torch.stack([s.image for s in samples]), size=96,
                                        mode="bilinear", antialias=True).clamp(0, 1)
    return x[:3], [s.image_id for s in samples[:3]], x[3:]


@pytest.mark.parametrize("method", list(METHODS))
def test_an_image_is_explained_the_same_alone_and_in_a_batch_of_three(
        lite0, three_photos, method):
    """Guided IG differed by 31-68% and UNI by 4-10% (relative L1) between an image alone
    and in a batch: batched model calls round differently and both methods are
    discontinuous in the model's outputs (selection, sign steps, best iterate). Here, at
    96 px with two steps, UNI's batched search gave the first photo 2% (fails 1e-5)."""
    x, ids, references = three_photos
    options = {"output": "logit", **cheap_options(method, references)}
    batch = explain(lite0, x, None, method, image_ids=ids, **options).attributions
    for i in range(3):
        alone = explain(lite0, x[i : i + 1], None, method, image_ids=ids[i : i + 1],
                        **options).attributions
        assert relative_l1(batch[i], alone[0]) < 1e-5, i


def _train_mode_model():
    """A small timm model with BatchNorm, in train mode, whose running statistics are not
    the initial ones (so that train-mode outputs differ from eval-mode ones)."""
    from uni.models import load_model

    torch.manual_seed(0)
    model = load_model("resnet18", pretrained=False, num_classes=10)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return model


@pytest.mark.parametrize("method", list(METHODS))
def test_a_train_mode_model_is_explained_in_eval_mode_and_left_unchanged(method):
    model = _train_mode_model()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    references = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    options = cheap_options(method, references)
    options.pop("steps", None)  # attribute's own argument
    modes = [m.training for m in model.modules()]
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    in_train = attribute(model, x, 0, method, steps=2, **options)
    assert [m.training for m in model.modules()] == modes
    for name, value in model.state_dict().items():
        assert torch.equal(value, buffers[name]), name
    model.eval()
    in_eval = attribute(model, x, 0, method, steps=2, **options)
    torch.testing.assert_close(in_train, in_eval, rtol=0, atol=0)


def test_a_metric_scores_a_train_mode_model_in_eval_mode_and_leaves_it_unchanged():
    from uni.metrics import mufidelity

    model = _train_mode_model()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    attributions = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    in_train = mufidelity(model, x, attributions, 0, subsets=4)
    assert model.training
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())
    in_eval = mufidelity(model.eval(), x, attributions, 0, subsets=4)
    torch.testing.assert_close(in_train, in_eval, rtol=0, atol=0)


@pytest.mark.parametrize(("method", "options", "message"), [
    ("ig_blur", {"sigmaa": 50}, "method.ig_blur: unknown option(s) ['sigmaa']"),
    ("ig_blur", {"sigma": -1}, "method.ig_blur.sigma=-1 must be"),
    ("uni", {"eps": math.nan}, "method.uni.eps=nan must be"),
    ("guided_ig", {"fraction": 2.0}, "method.guided_ig.fraction=2.0 must be"),
    ("nope", {}, "method='nope' is not one of"),
])
def test_the_python_api_refuses_what_the_command_line_refuses(method, options, message):
    model = _train_mode_model().eval()
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError) as err:
        attribute(model, x, 0, method, steps=2, **options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_metric_refuses_nan_attributions_in_one_line():
    from uni.metrics import mufidelity

    model = _train_mode_model().eval()
    x = torch.rand(1, 3, 32, 32)
    attributions = torch.rand_like(x)
    attributions[0, 0, 0, 0] = math.nan
    with pytest.raises(InputError, match=r"^attributions hold 1 non-finite values"):
        mufidelity(model, x, attributions, 0)


@pytest.mark.parametrize("returns", ["tuple", "dict"])
def test_a_model_that_does_not_return_one_tensor_is_one_line(returns):
    net = _train_mode_model().eval()

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return (out, out) if returns == "tuple" else {"logits": out}

    with pytest.raises(InputError, match=rf"^the model must return .* it returned {returns}"):
        attribute(Wrapped(), torch.rand(1, 3, 32, 32), 0, "ig_black", steps=2)


# --- stale inputs: keys on contents, store files on their tensors -----------------------


def test_only_the_fixed_methods_records_change_key():
    """Guided IG and UNI carry version 2 in their identity (records made before the batch
    fix are recomputed); every other method's identity, so its keys, is as before."""
    from tests.test_contract import config
    from uni.engine.identity import method_identity

    cfg = config(f"method=[{','.join(METHODS)}]")
    for method in METHODS:
        identity = method_identity(cfg, {}, method)
        fixed = method in ("guided_ig", "uni")
        assert identity.get("method_version") == (2 if fixed else None), method
        assert set(identity) - {"method_version"} == {
            "model", "data", "seed", "output", "target", "method"}


def test_a_checkpoint_replaced_at_the_same_path_is_recomputed(tmp_path):
    from tests.test_hostile import _config, _photo, _resnet_state
    from uni.records import RecordStore
    from uni.run import run_config as run

    root = tmp_path / "data"
    root.mkdir()
    _photo(root / "n01440764_0.png", 0)
    checkpoint = tmp_path / "weights.pt"
    state = _resnet_state()
    torch.save(state, checkpoint)
    cfg = _config(root, "method=[ig_black]", f"model.checkpoint={checkpoint}")
    run(cfg, tmp_path / "run")
    assert run(cfg, tmp_path / "run").stored == 1  # same weights: reused
    first = RecordStore(tmp_path / "run").load()
    state["fc.bias"] = state["fc.bias"] + 1  # other weights, same path, same size
    torch.save(state, checkpoint)
    assert run(cfg, tmp_path / "run").stored == 0
    records = RecordStore(tmp_path / "run").load()
    assert records["config_hash"].nunique() == 2 * first["config_hash"].nunique()


def test_a_store_file_with_altered_tensors_is_recomputed(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from uni.attribution_store import AttributionStore

    store = AttributionStore(tmp_path / "store")
    tensors = {"attributions": torch.rand(3, 4, 4), "diagnostic/kl": torch.tensor(0.5)}
    store.put("key", "img", "d1", tensors)
    torch.testing.assert_close(store.get("key", "img", "d1"), tensors)
    [path] = (tmp_path / "store" / "key").glob("*.safetensors")
    with safe_open(str(path), "pt") as opened:
        meta = opened.metadata()
    save_file({**tensors, "attributions": tensors["attributions"] * 2}, str(path), metadata=meta)
    assert store.get("key", "img", "d1") is None


# --- report and tables read every records file through one loader --------------------


def _uni(monkeypatch, *argv: str) -> int | str:
    """``uni ARGV`` in this process (the command line's own entry): its exit code (0, an
    int, or the one-line message ``sys.exit`` printed, exit status 1)."""
    import sys

    from uni import run as cli

    monkeypatch.setattr(sys, "argv", ["uni", *argv])
    try:
        cli.main()
    except SystemExit as exit_:
        return exit_.code
    return 0


def _break_records(path, kind: str) -> None:
    import pandas as pd

    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_parquet":
        path.write_text("image_id,value\na,1\n")
    elif kind == "wrong_schema":
        pd.DataFrame({"image": ["a"], "score": [1.0]}).to_parquet(path)
    elif kind == "null_image_id":
        frame = pd.read_parquet(path)
        frame.loc[0, "image_id"] = None
        frame.to_parquet(path)


@pytest.mark.parametrize("kind", ["truncated", "empty", "not_parquet", "wrong_schema",
                                  "null_image_id"])
def test_an_unreadable_records_file_is_one_line_naming_it_never_a_missing_experiment(
        tmp_path, monkeypatch, kind):
    from tests.test_records import _faithfulness_run

    _faithfulness_run(tmp_path / "faithfulness", "m", ["a", "b"])
    _faithfulness_run(tmp_path / "robustness", "m", ["a", "b"])
    broken = tmp_path / "robustness" / "records.parquet"
    _break_records(broken, kind)
    for argv in (("report", str(tmp_path)), ("tables", str(tmp_path / "robustness"),
                                             "--out", str(tmp_path / "t"))):
        code = _uni(monkeypatch, *argv)
        assert isinstance(code, str) and code.startswith(f"error: {broken}: "), code
        assert "\n" not in code
    assert not (tmp_path / "REPORT.md").exists()


def test_a_record_stored_twice_with_other_values_is_said(tmp_path):
    import pandas as pd

    from tests.test_records import _faithfulness_run
    from uni.analysis.tables import load_records

    run_dir = tmp_path / "faithfulness"
    _faithfulness_run(run_dir, "m", ["a", "b"])
    frame = pd.read_parquet(run_dir / "records.parquet")
    twice = frame.iloc[:1].assign(value=frame["value"].iloc[0] + 1)
    pd.concat([frame, twice]).to_parquet(run_dir / "records.parquet")
    with pytest.warns(UserWarning, match="1 record\\(s\\) stored twice with other values"):
        records = load_records([run_dir])
    assert len(records) == len(frame)


# --- the command line: bad overrides, multiruns, plans, writes ------------------------


@pytest.fixture
def photos_dir(tmp_path):
    from tests.test_hostile import _photo

    root = tmp_path / "data"
    root.mkdir()
    for i in range(2):
        _photo(root / f"n01440764_{i}.png", i)
    return root


def _small_run(root, *extra: str) -> list[str]:
    return ["model=resnet18_random", "data=folder", f"data.root={root}", "method=[ig_black]",
            "eval=[mufidelity]", "attribution.steps=2", "eval.mufidelity.subsets=4", *extra]


@pytest.mark.parametrize(("overrides", "message"), [
    (["--plan", "seed=18446744073709551616"], "seed=18446744073709551616 must be an integer"),
    (["method=[]"], "method: no attribution method selected"),
    (["eval.mufidelity.fill=7.5"], "eval.mufidelity.fill=7.5 must be a finite number in [0, 1]"),
    (["attribution_store="], "attribution_store is empty"),
    (["method.ig_black.steps=é"], "override 'method.ig_black.steps=é' is not valid override"),
    (["data.start=2"], "data.start=2 is beyond the data (2 images"),
], ids=["huge_seed_plan", "no_method", "fill_outside_pixels", "empty_store", "unicode",
        "start_beyond_data"])
def test_a_bad_override_is_one_line_and_exit_2(tmp_path, photos_dir, monkeypatch, capsys,
                                                overrides, message):
    run_dir = tmp_path / "run"
    code = _uni(monkeypatch, *_small_run(photos_dir), f"hydra.run.dir={run_dir}", *overrides)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().startswith(f"error: {message}") and len(err.strip().splitlines()) == 1
    assert not (run_dir / "records.parquet").exists()
    if "--plan" in overrides:
        assert not (run_dir / ".hydra").exists()  # the plan writes no config


def test_a_multirun_runs_every_valid_job_and_lists_the_failed_ones(
        tmp_path, photos_dir, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code = _uni(monkeypatch, "--multirun", *_small_run(photos_dir), "seed=abc,0",
                f"hydra.sweep.dir={sweep}")
    err = capsys.readouterr().err
    assert code == 1
    # job directories are named by what varies (uni.run.sweep_subdir_overrides)
    assert (sweep / "seed=0" / "records.parquet").exists()  # the valid job after the bad one
    assert not (sweep / "seed=abc" / "records.parquet").exists()
    lines = err.strip().splitlines()
    assert "error: 1 job(s) of the multirun failed (the others ran):" in lines
    assert lines[-1] == f"  {sweep / 'seed=abc'}: seed='abc' must be an integer in " \
                        "[-9.22337e+18, 9.22337e+18]"


def test_a_plan_into_an_existing_run_leaves_its_config_and_the_run_saves_its_own(
        tmp_path, photos_dir, monkeypatch):
    run_dir = tmp_path / "run"
    code = _uni(monkeypatch, *_small_run(photos_dir), f"hydra.run.dir={run_dir}")
    assert code == 0
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_text()
    [saved] = (run_dir / "configs").glob("*.yaml")
    assert "seed: 0" in saved.read_text()
    code = _uni(monkeypatch, "--plan", *_small_run(photos_dir), "seed=5",
                f"hydra.run.dir={run_dir}")
    assert code == 0
    assert (run_dir / ".hydra" / "config.yaml").read_text() == hydra_config
    assert list((run_dir / "configs").glob("*.yaml")) == [saved]


def test_the_report_names_every_config_run_into_one_directory(tmp_path):
    from tests.test_contract import config
    from uni.analysis.claims import run_options
    from uni.engine.job import save_config

    run_dir = tmp_path / "run"
    for subsets in (4, 8):
        save_config(config(f"eval.mufidelity.subsets={subsets}"), run_dir)
    options = run_options(run_dir, ("eval.mufidelity",))
    assert "subsets=4" in options and "subsets=8" in options and " / " in options


def _results(tmp_path):
    from tests.test_records import _faithfulness_run

    results = tmp_path / "results"
    _faithfulness_run(results / "faithfulness", "m", ["a", "b"])
    return results


def test_report_replaces_a_symlinked_report_never_writing_through_it(tmp_path, monkeypatch):
    outside = tmp_path / "outside.md"
    outside.write_text("not the report's\n")
    results = _results(tmp_path)
    (results / "REPORT.md").symlink_to(outside)
    assert _uni(monkeypatch, "report", str(results)) == 0
    assert outside.read_text() == "not the report's\n"
    report = results / "REPORT.md"
    assert not report.is_symlink() and report.read_text().startswith("# uni-bench report")
    assert not list(results.rglob(".*.tmp"))


@pytest.mark.parametrize("case", ["file_for_tables_dir", "out_under_a_file", "figures_pt"])
def test_report_and_tables_write_faults_are_one_line(tmp_path, monkeypatch, case):
    results = _results(tmp_path)
    if case == "file_for_tables_dir":
        (results / "tables").write_text("a file where the tables directory should be")
        argv, start = ("report", str(results)), "error: cannot write the report: "
    elif case == "out_under_a_file":
        (tmp_path / "a_file").write_text("")
        argv = ("tables", str(results / "faithfulness"), "--out", str(tmp_path / "a_file" / "t"))
        start = "error: cannot write the tables: Not a directory: "
    else:
        (results / "faithfulness" / "figures.pt").write_bytes(b"\x80\x04garbage not a pickle")
        argv = ("report", str(results))
        start = f"error: {results / 'faithfulness' / 'figures.pt'}: unreadable figure data"
    code = _uni(monkeypatch, *argv)
    assert isinstance(code, str) and code.startswith(start), code
    assert "\n" not in code and "weights_only" not in code


def test_stale_temporary_files_are_removed_at_start_and_nothing_outside_the_run_changes(
        tmp_path, photos_dir, monkeypatch):
    import os
    import time

    def listing():
        return {str(p.relative_to(tmp_path)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "run")}

    run_dir = tmp_path / "run"
    stale = [run_dir / "attributions" / "k" / ".x.safetensors.1.tmp",
             run_dir / "records.parts" / ".part-1.parquet.2.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    fresh = run_dir / "records.parts" / ".part-2.parquet.3.tmp"  # a write in progress
    fresh.write_bytes(b"half")
    before = listing()
    monkeypatch.chdir(tmp_path)
    code = _uni(monkeypatch, *_small_run(photos_dir), f"hydra.run.dir={run_dir}")
    assert code == 0
    assert not any(p.exists() for p in stale) and fresh.exists()
    assert listing() == before  # nothing outside the run directory was written


# --- data: files that are no image, links out of the data -----------------------------


def test_a_huge_file_that_is_no_image_is_skipped_unread_with_its_digest(tmp_path):
    import tracemalloc

    from tests.test_hostile import CONFIG, _photo
    from uni.data import build_dataset
    from uni.data.base import streamed_digest

    root = tmp_path / "data"
    root.mkdir()
    _photo(root / "n01440764_0.png", 0)
    huge = root / "n01440764_huge.png"
    with open(huge, "wb") as f:  # 300 MB of zeros, sparse on disk
        f.truncate(300 << 20)
    dataset = build_dataset("folder", CONFIG, root=root)
    index = [i for i, item in enumerate(dataset.items) if "huge" in item[0]][0]
    tracemalloc.start()
    try:
        sample = dataset[index]
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert sample.image is None and "UnidentifiedImageError" in sample.skip_reason
    assert sample.digest == streamed_digest(huge)
    assert peak_mb < 50  # never read whole


def test_a_file_symlink_out_of_the_data_root_is_not_followed(tmp_path):
    from tests.test_hostile import CONFIG, _photo
    from uni.data import build_dataset

    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    _photo(root / "n01440764_0.png", 0)
    _photo(outside / "secret.png", 1)
    (root / "n01440764_link.png").symlink_to(outside / "secret.png")
    (root / "n01440764_inner.png").symlink_to(root / "n01440764_0.png")  # inside: kept
    ids = [item[0] for item in build_dataset("folder", CONFIG, root=root).items]
    assert ids == ["n01440764_0.png", "n01440764_inner.png"]


@pytest.mark.usefixtures("offline_wandb")
def test_wandb_without_a_network_goes_offline_in_one_line(tmp_path, monkeypatch, capsys):
    from uni.loggers import make_logger

    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    logger = make_logger({"name": "wandb"}, {"seed": 0}, tmp_path / "run")
    try:
        assert logger.run.offline
    finally:
        logger.finish()
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("wandb: ")]
    assert line.startswith("wandb: 127.0.0.1:9 unreachable (") and "logging offline" in line

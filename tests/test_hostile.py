"""Hostile input (issue 17): file names that are not UTF-8, images whose decoding or
resizing would not fit in memory, files replaced under the same name, settings that make
every result garbage, broken checkpoints, wrong API inputs and I/O faults. Each ends in a
recorded skip, a recomputation or a one-line error, never a traceback or a silent NaN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from uni.data import build_dataset
from uni.data.base import image_id_bytes, image_id_of

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"input_size": (3, 32, 32), "crop_pct": 0.875, "interpolation": "bicubic"}
NOT_UTF8 = b"n01440764_caf\xe9.png"  # latin-1 "café": not valid UTF-8


def _photo(path, seed: int, size=(48, 40)) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")


def _cli(out: Path, root: Path, *extra: str):
    """Run the command line on ``root``."""
    command = [
        sys.executable, "-m", "uni.run", "model=resnet18_random", "data=folder",
        f"data.root={root}", "method=[ig_black]", "eval=[mufidelity]",
        "attribution.steps=2", "eval.mufidelity.subsets=4", "data.batch_size=2",
        f"hydra.run.dir={out}", *extra,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


# --- image identity ---------------------------------------------------------------


@pytest.mark.parametrize("name", [
    b"plain.png", b"caf\xc3\xa9.png", b"caf\xe9.png", b"a\\b.png", b"\xff\xfe\\x41.png",
])
def test_image_ids_are_utf8_and_map_back_to_the_name(name):
    image_id = image_id_of(os.fsdecode(name))
    image_id.encode("utf-8")  # storable and hashable as it is
    assert image_id_bytes(image_id) == name
    if b"\\" not in name and name.decode("utf-8", "ignore").encode() == name:
        assert image_id == name.decode()  # UTF-8 names keep the id earlier runs gave them


def test_escaped_ids_cannot_collide_with_real_names():
    escaped = image_id_of(os.fsdecode(b"caf\xe9.png"))
    literal = image_id_of("caf\\xe9.png")  # a real name spelling the escape out
    assert escaped == "caf\\xe9.png" and literal == "caf\\\\xe9.png"


def test_folder_with_a_name_that_is_not_utf8_loads_every_image(tmp_path):
    _photo(os.path.join(os.fsencode(tmp_path), NOT_UTF8), 0)
    _photo(tmp_path / "n01440764_ok.png", 1)
    samples = list(build_dataset("folder", CONFIG, root=tmp_path))
    assert sorted(s.image_id for s in samples) == ["n01440764_caf\\xe9.png", "n01440764_ok.png"]
    assert all(s.image is not None and s.image.shape == (3, 32, 32) for s in samples)
    assert all(s.label == 0 for s in samples)  # the wnid prefix still reads
    assert len({s.digest for s in samples}) == 2


# --- bounded decoding -------------------------------------------------------------


@pytest.mark.parametrize(("size", "reason"), [
    ((20000, 1), "20000x1 image exceeds the aspect-ratio cap of 1:50"),
    ((1, 3000), "1x3000 image exceeds the aspect-ratio cap of 1:50"),
    ((9000, 8000), "9000x8000 image exceeds the cap of 67,108,864 decoded pixels"),
])
def test_images_over_a_cap_are_skipped_before_decoding(tmp_path, size, reason):
    Image.new("L", size).save(tmp_path / "n01440764_big.png")
    [sample] = build_dataset("folder", CONFIG, root=tmp_path)
    assert sample.image is None
    assert sample.skip_reason == f"ImageTooLarge: {reason}"


def test_a_panorama_within_the_caps_loads(tmp_path):
    _photo(tmp_path / "n01440764_wide.png", 0, size=(1000, 25))  # 1:40
    [sample] = build_dataset("folder", CONFIG, root=tmp_path)
    assert sample.image is not None and sample.image.shape == (3, 32, 32)


def test_resized_pixels_are_capped_for_huge_model_inputs(tmp_path):
    _photo(tmp_path / "n01440764_wide.png", 0, size=(400, 10))
    config = {**CONFIG, "input_size": (3, 2000, 2000)}  # short side 10 -> 2285 px, long side 91400
    [sample] = build_dataset("folder", config, root=tmp_path)
    assert sample.skip_reason == ("ImageTooLarge: 400x10 image would be resized to "
                                  "208,849,000 pixels, over the cap of 32,000,000")


# --- the must-show folder ---------------------------------------------------------


def test_hostile_folder_skips_what_it_cannot_bound_and_recomputes_replaced_files(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    good = ["n01440764_a.png", "n01440764_b.png", "n01440764_caf\\xe9.png"]
    _photo(root / "n01440764_a.png", 0)
    _photo(root / "n01440764_b.png", 1)
    _photo(os.path.join(os.fsencode(root), NOT_UTF8), 2)
    Image.new("RGB", (20000, 1)).save(root / "n01440764_strip.png")  # 143 bytes
    (root / "n01440764_broken.png").write_bytes(b"not an image")
    run = tmp_path / "run"

    first = _cli(run, root)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "done: 5 images (2 skipped" in first.stdout
    records = pd.read_parquet(run / "records.parquet")
    values = records[records["metric"] != "skipped"]
    assert sorted(values["image_id"]) == good
    assert np.isfinite(values["value"]).all()
    skipped = records[records["metric"] == "skipped"].set_index("image_id")["note"]
    assert skipped.to_dict() == {
        "n01440764_broken.png": "UnidentifiedImageError: cannot identify image file",
        "n01440764_strip.png": "ImageTooLarge: 20000x1 image exceeds the aspect-ratio cap "
                               "of 1:50",
    }

    # replace one file's pixels (and fix the broken one) under the same names
    _photo(root / "n01440764_b.png", 7)
    _photo(root / "n01440764_broken.png", 8)
    second = _cli(run, root)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "done: 5 images (1 skipped; 2 image x method pairs already stored)" in second.stdout
    after = pd.read_parquet(run / "records.parquet").set_index("image_id")
    before = records.set_index("image_id")
    assert after.loc["n01440764_b.png", "content_digest"] != \
        before.loc["n01440764_b.png", "content_digest"]
    assert after.loc["n01440764_b.png", "value"] != before.loc["n01440764_b.png", "value"]
    assert after.loc["n01440764_a.png", "value"] == before.loc["n01440764_a.png", "value"]
    assert after.loc["n01440764_broken.png", "metric"] == "mufidelity"  # the skip is gone
    assert len(after) == 5


# --- checkpoints ------------------------------------------------------------------


def _resnet_state() -> dict:
    from uni.models import load_model

    return dict(load_model("resnet18", pretrained=False, num_classes=10).net.state_dict())


def _write_checkpoint(path: Path, kind: str) -> None:
    import torch

    state = _resnet_state()
    if kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "list":
        torch.save(list(state.values()), path)
    elif kind == "not_tensors":
        torch.save({k: 1.0 for k in state}, path)
    elif kind == "wrong_keys":
        torch.save({f"x.{k}": v for k, v in list(state.items())[:-2]}, path)
    elif kind == "wrong_shape":
        torch.save({**state, "fc.weight": torch.zeros(5, 512)}, path)
    elif kind == "nan":
        torch.save({**state, "conv1.weight": torch.full_like(state["conv1.weight"], float("nan"))},
                   path)
    elif kind == "object":
        torch.save({"weights": Path("a path, which weights-only loading refuses")}, path)


@pytest.mark.parametrize(("kind", "problem"), [
    ("missing", "does not exist"),
    ("text", "cannot be read: not a torch.save or .safetensors file of tensors (IndexError: "),
    ("empty", "cannot be read: not a torch.save or .safetensors file of tensors (EOFError: "),
    ("object", "cannot be read: not a torch.save or .safetensors file of tensors "
               "(UnpicklingError: "),
    ("list", "holds a list, not a mapping of parameter names to tensors"),
    ("not_tensors", ": 'conv1.weight' is a float, not a tensor"),
    ("wrong_keys", "does not fit the model: 100 tensors for 102 (names and shapes differ; "
                   "missing e.g. 'bn1.bias')"),
    ("wrong_shape", "does not fit the model: 1 tensor(s) of the wrong shape, e.g. 'fc.weight' "
                    "is (5, 512), the model's (10, 512)"),
    ("nan", ": 'conv1.weight' holds non-finite values (NaN or Inf)"),
])
def test_every_broken_checkpoint_is_one_line_naming_the_file(tmp_path, kind, problem):
    from uni.errors import ConfigError
    from uni.models import load_model

    path = tmp_path / f"{kind}.pt"
    _write_checkpoint(path, kind)
    with pytest.raises(ConfigError) as err:
        load_model("resnet18", pretrained=False, num_classes=10, checkpoint=path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert problem in message


def test_a_broken_checkpoint_on_the_command_line_exits_2_in_one_line(tmp_path):
    path = tmp_path / "nan.pt"
    _write_checkpoint(path, "nan")
    _photo(tmp_path / "n01440764_a.png", 0)
    result = _cli(tmp_path / "run", tmp_path, f"model.checkpoint={path}")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: model.checkpoint={str(path)!r}: 'conv1.weight' "
                                     "holds non-finite values (NaN or Inf)")


# --- the Python API checks its inputs ---------------------------------------------


def _linear_inputs():
    import torch

    from tests.conftest import Linear

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return Linear(), x, torch.tensor([0, 1])


BAD_IMAGES = [
    ("x255", lambda x: x * 255,
     "x must be in [0, 1] (the model normalises inside); its values span [0.02032, 255]; "
     "images in [0, 255]? divide by 255"),
    ("negative", lambda x: x - 0.5,
     "x must be in [0, 1] (the model normalises inside); its values span [-0.4999, 0.4998]"),
    ("nan", lambda x: x.index_fill(0, __import__("torch").tensor([1]), float("nan")),
     "x holds 768 non-finite values (NaN or Inf)"),
    ("uint8", lambda x: (x * 255).to(__import__("torch").uint8),
     "x is torch.uint8: images must be floats in [0, 1]: use x.float() / 255"),
    ("one_image", lambda x: x[0], "x must be a batch (N, C, H, W); got one image (3, 16, 16): "
                                  "use x[None]"),
    ("empty", lambda x: x[:0], "x is an empty batch (N = 0)"),
    ("numpy", lambda x: x.numpy(), "x must be a torch.Tensor of images (N, C, H, W); got "
                                   "ndarray"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_attribute_refuses_bad_images_in_one_line(case, change, message):
    import uni
    from uni.errors import InputError

    model, x, target = _linear_inputs()
    with pytest.raises(InputError) as err:
        uni.attribute(model, change(x), target, method="ig_black", steps=2)
    assert str(err.value) == message


BAD_TARGETS = [
    ("outside", [0, 2], "target 2 is not a class of the model (0..1)"),
    ("negative", -1, "target -1 is not a class of the model (0..1)"),
    ("length", [0, 1, 1], "target has shape (3,); it must hold one class per image (2,)"),
    ("float", [0.0, 1.0], "target must be integer class indices; got torch.float32"),
    ("text", "cat", "target must be class indices; got str"),
]


@pytest.mark.parametrize(("case", "target", "message"), BAD_TARGETS,
                         ids=[c[0] for c in BAD_TARGETS])
def test_bad_targets_are_refused_by_methods_and_metrics(case, target, message):
    import torch

    import uni
    from uni.errors import InputError

    model, x, _ = _linear_inputs()
    with pytest.raises(InputError) as err:
        uni.attribute(model, x, target, method="ig_black", steps=2)
    assert str(err.value) == message
    with pytest.raises(InputError) as err:
        uni.metrics.deletion(model, x, torch.ones_like(x), target, steps=2)
    assert str(err.value) == message


def test_metrics_refuse_attributions_of_the_wrong_shape_and_bad_images():
    import torch

    import uni
    from uni.errors import InputError

    model, x, target = _linear_inputs()
    for name in ("mufidelity", "deletion", "insertion"):
        metric = getattr(uni.metrics, name)
        with pytest.raises(InputError, match=r"^attributions have shape \(2, 16, 16\); they must "
                                             r"be shaped like x \(2, 3, 16, 16\)$"):
            metric(model, x, torch.ones(2, 16, 16), target)
        with pytest.raises(InputError, match=r"divide by 255$"):
            metric(model, x * 255, torch.ones_like(x), target)


def test_float64_and_int_inputs_are_converted_to_the_same_numbers():
    import torch

    import uni

    model, x, target = _linear_inputs()
    reference = uni.attribute(model, x, target, method="ig_black", steps=4)
    converted = uni.attribute(model, x.double(), target.int().tolist(), method="ig_black",
                              steps=4)
    assert converted.dtype == torch.float32
    torch.testing.assert_close(converted, reference, rtol=0, atol=0)
    a = uni.metrics.deletion(model, x, reference, target, steps=4)
    b = uni.metrics.deletion(model, x.double(), reference.double(), target.int(), steps=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# --- settings that make every result garbage, I/O faults ---------------------------


def _config(root: Path, *overrides: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from uni.config_dir import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[
            "model=resnet18_random", "data=folder", f"data.root={root}", "eval=[mufidelity]",
            "attribution.steps=2", "eval.mufidelity.subsets=4", "data.batch_size=1",
            *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture
def two_photos(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for i in range(2):
        _photo(root / f"n01440764_{i}.png", i)
    return root


@pytest.mark.parametrize(("method", "setting"), [
    ("ig_blur", "method.ig_blur.sigma=0"),  # the baseline is the image itself
    ("uni", "method.uni.eps=0"),  # no search radius: the baseline is the image itself
    ("uni", "method.uni.pgd_steps=0"),  # no search: the baseline stays at the image
])
def test_settings_that_zero_every_attribution_exit_1_naming_the_method(
        two_photos, tmp_path, method, setting):
    from uni.errors import RunError
    from uni.run import run_config as run

    cfg = _config(two_photos, f"method=[ig_black,{method}]", setting)
    with pytest.raises(RunError) as err:
        run(cfg, tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"method {method}: every attribution of the 2 images explained "
                              "is zero or non-finite; check its settings (")
    assert setting.rsplit(".", 1)[1] in message and "ig_black" not in message
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")  # kept
    assert set(records["method"]) == {"ig_black", method} and len(records) == 4


def test_a_healthy_run_passes_the_garbage_check(two_photos, tmp_path):
    from uni.run import run_config as run

    summary = run(_config(two_photos, "method=[ig_black]"), tmp_path / "run")
    assert summary.images == 2 and summary.skipped == 0


def test_the_cli_reports_garbage_in_one_line_with_exit_1(two_photos, tmp_path):
    result = _cli(tmp_path / "run", two_photos, "method=[ig_blur]", "method.ig_blur.sigma=0")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: method ig_blur: every attribution of the 2 images")
    assert "Traceback" not in result.stderr
    assert (tmp_path / "run" / "records.parquet").exists()


def test_an_output_directory_that_cannot_be_created_is_one_line(two_photos, tmp_path):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "run"
    result = _cli(out, two_photos)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot create the run directory: Not a directory: {out}")


def _cli_in_process(monkeypatch, capsys, run_dir: Path, root: Path) -> tuple[int, str]:
    from uni import run as cli

    monkeypatch.setattr(sys, "argv", [
        "uni", "model=resnet18_random", "data=folder", f"data.root={root}",
        "method=[ig_black]", "eval=[mufidelity]", "attribution.steps=2",
        "eval.mufidelity.subsets=4", "data.batch_size=1", f"hydra.run.dir={run_dir}"])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _fail_writes_after(monkeypatch, good_writes: int, error: OSError) -> None:
    """Writes of record files after the first ``good_writes`` fail with ``error``, half
    written (as a full disk leaves them)."""
    original = pd.DataFrame.to_parquet
    calls = []

    def to_parquet(frame, path, *args, **kwargs):
        calls.append(path)
        if len(calls) <= good_writes:
            return original(frame, path, *args, **kwargs)
        Path(path).write_bytes(b"PAR1 half")
        raise error

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)


@pytest.mark.parametrize("error", [
    OSError(28, "No space left on device"),
    PermissionError(13, "Permission denied"),  # a run directory made read-only meanwhile
], ids=["disk_full", "read_only"])
def test_io_faults_are_one_line_leave_no_temp_files_and_resume_exactly(
        two_photos, tmp_path, monkeypatch, capsys, error):
    from uni.run import run_config as run

    run(_config(two_photos, "method=[ig_black]"), tmp_path / "clean")
    expected = pd.read_parquet(tmp_path / "clean" / "records.parquet")

    with monkeypatch.context() as faults:
        _fail_writes_after(faults, 1, error)  # the first batch lands, then the disk fills
        code, stderr = _cli_in_process(monkeypatch, capsys, tmp_path / "run", two_photos)
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"error: {error.strerror}; finished batches are in {tmp_path / 'run'}; rerun the same "
        "command once this is fixed")
    assert not list((tmp_path / "run").rglob("*.tmp"))  # no orphan half-written files

    code, _ = _cli_in_process(monkeypatch, capsys, tmp_path / "run", two_photos)
    assert code == 0
    got = pd.read_parquet(tmp_path / "run" / "records.parquet")
    pd.testing.assert_frame_equal(got, expected)


def test_records_without_a_digest_stay_valid(two_photos, tmp_path):
    """Records written before digests existed (no ``content_digest`` column) count for
    any bytes: a rerun recomputes nothing, and the committed records still load."""
    from uni.records import DIGEST, RecordStore
    from uni.run import run_config as run

    cfg = _config(two_photos, "method=[ig_black]")
    run(cfg, tmp_path / "run")
    path = tmp_path / "run" / "records.parquet"
    old = pd.read_parquet(path).drop(columns=DIGEST)
    old.to_parquet(path, index=False)
    summary = run(cfg, tmp_path / "run")
    assert summary.stored == 2
    pd.testing.assert_frame_equal(pd.read_parquet(path), old)

    committed = sorted((ROOT / "results").rglob("records.parquet"))[:3]
    assert committed
    for i, records in enumerate(committed):
        (tmp_path / f"c{i}").mkdir()
        (tmp_path / f"c{i}" / "records.parquet").write_bytes(records.read_bytes())
        store = RecordStore(tmp_path / f"c{i}")
        assert len(store.load()) == len(pd.read_parquet(records)) and store.done()
        key = next(iter(store.done()))
        assert store.is_done(*key, digest="any")

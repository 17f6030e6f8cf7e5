"""Real-world input: broken files, odd colour modes, huge images, odd names, bad settings,
interrupted runs, reproducibility and safe loading (issue: reliability)."""

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from uni.data import build_dataset
from uni.data.transforms import to_rgb

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"input_size": (3, 32, 32), "crop_pct": 0.875, "interpolation": "bicubic"}
RNG = np.random.default_rng(1)


def _rgb(width=40, height=30) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _bad_folder(root: Path) -> dict[str, bool]:
    """Files named as an ImageNet folder would hold them; value: whether it is readable."""
    files = {}
    _rgb().save(root / "n01440764_plain.JPEG")
    files["n01440764_plain.JPEG"] = True
    good = (root / "n01440764_plain.JPEG").read_bytes()
    (root / "n01443537_truncated.JPEG").write_bytes(good[: len(good) // 3])
    files["n01443537_truncated.JPEG"] = False
    (root / "n01484850_empty.JPEG").write_bytes(b"")
    files["n01484850_empty.JPEG"] = False
    (root / "n01491361_text.JPEG").write_text("<html>404</html>")
    files["n01491361_text.JPEG"] = False
    _rgb().save(root / "n01494475_png_inside.JPEG", format="PNG")
    files["n01494475_png_inside.JPEG"] = True
    _rgb().convert("L").save(root / "n01496331_gray.JPEG")
    files["n01496331_gray.JPEG"] = True
    _rgb().convert("RGBA").save(root / "n01498041_rgba.png")
    files["n01498041_rgba.png"] = True
    _rgb().convert("CMYK").save(root / "n01514668_cmyk.JPEG")
    files["n01514668_cmyk.JPEG"] = True
    _rgb().convert("P").save(root / "n01514859_palette.png")
    files["n01514859_palette.png"] = True
    Image.fromarray(RNG.integers(0, 65536, (30, 40)).astype(np.uint16)).save(
        root / "n01518878_sixteen.png"
    )
    files["n01518878_sixteen.png"] = True
    _rgb(1, 1).save(root / "n01530575_one_pixel.png")
    files["n01530575_one_pixel.png"] = True
    for name in ("n01531178 with spaces.JPEG", "n01532829_quote\"d.JPEG",
                 "n01534433_it's.JPEG", "n01537544_naïve_日本.JPEG"):
        _rgb().save(root / name)
        files[name] = True
    return files


def test_every_bad_file_is_a_recorded_skip_and_the_rest_load(tmp_path, caplog):
    files = _bad_folder(tmp_path)
    samples = {s.image_id: s for s in build_dataset("folder", CONFIG, root=tmp_path)}
    assert set(samples) == set(files)
    for name, readable in files.items():
        sample = samples[name]
        if readable:
            assert sample.image is not None and sample.image.shape == (3, 32, 32), name
            assert 0 <= sample.image.min() and sample.image.max() <= 1
        else:
            assert sample.image is None and sample.skip_reason, name
    skips = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skips) == 3 and all("\n" not in m for m in skips)


def test_exif_orientation_is_respected():
    image = _rgb(40, 20)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    reloaded = Image.open(io.BytesIO(buffer.getvalue()))
    assert reloaded.size == (40, 20)
    assert to_rgb(reloaded).size == (20, 40)


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    """A 12000x12000 JPEG is decoded in draft mode: memory stays far below its 432 MB."""
    path = tmp_path / "n01440764_huge.JPEG"
    Image.new("RGB", (12000, 12000), (120, 30, 200)).save(path, quality=50)
    script = (
        "import resource; from uni.data import build_dataset\n"
        f"ds = build_dataset('folder', {CONFIG!r}, root={str(tmp_path)!r})\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s = ds[0]; assert s.image is not None and s.image.shape == (3, 32, 32)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    assert float(result.stdout.strip().splitlines()[-1]) < 150  # MB of extra peak memory


def _cli(out: Path, root: Path, *extra: str, **popen):
    command = [
        sys.executable, "-m", "uni.run", "model=resnet18_random", "data=folder",
        f"data.root={root}", "method=[ig_black,ig_uniform]", "eval=[mufidelity]",
        "attribution.steps=2", "eval.mufidelity.subsets=4", "data.batch_size=1",
        f"hydra.run.dir={out}", *extra,
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def test_cli_records_skips_and_exits_zero(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    files = _bad_folder(root)
    process = _cli(tmp_path / "run", root)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-2000:]
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")
    skipped = records[records["metric"] == "skipped"]
    assert set(skipped["image_id"]) == {n for n, ok in files.items() if not ok}
    assert skipped["note"].str.len().gt(0).all()
    assert set(records.loc[records["metric"] != "skipped", "image_id"]) == {
        n for n, ok in files.items() if ok
    }
    assert re.search(r"done: 15 images \(3 skipped", stdout)


def _photos(root: Path, count: int) -> None:
    root.mkdir()
    for i in range(count):
        _rgb(48, 48).save(root / f"n01440764_{i}.JPEG")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_uninterrupted_records(tmp_path, sig):
    root = tmp_path / "data"
    _photos(root, 10)  # one batch each: the kill lands with most of the run still to do
    clean = _cli(tmp_path / "clean", root, "figures.images=2")
    assert clean.wait(timeout=600) == 0
    expected = pd.read_parquet(tmp_path / "clean" / "records.parquet")

    # a shell that starts pytest in the background ignores SIGINT, and children inherit
    # that: give the run the default handler a terminal's Ctrl-C would meet
    killed = _cli(tmp_path / "killed", root, "figures.images=2",
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    figures = tmp_path / "killed" / "figures.pt"  # saved with the first batch's records
    deadline = time.time() + 300
    while time.time() < deadline and not figures.exists():
        time.sleep(0.02)
    os.kill(killed.pid, sig)
    killed.wait(timeout=120)
    assert killed.returncode != 0
    assert torch.load(figures, weights_only=True)["image_ids"]  # survived the kill
    resumed = _cli(tmp_path / "killed", root, "figures.images=2")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert "already stored" in stdout and not re.search(r"; 0 image x method", stdout)
    got = pd.read_parquet(tmp_path / "killed" / "records.parquet")
    pd.testing.assert_frame_equal(got, expected)  # bitwise: same rows, same values
    _assert_same_figure_data(tmp_path / "killed", tmp_path / "clean")


def _assert_same_figure_data(got: Path, expected: Path) -> None:
    a = torch.load(got / "figures.pt", weights_only=True)
    b = torch.load(expected / "figures.pt", weights_only=True)
    assert a["image_ids"] == b["image_ids"] and len(b["image_ids"]) == 2
    assert torch.equal(a["images"], b["images"])
    for kind in ("attributions", "baselines", "path_scores", "deletion_curves"):
        assert set(a[kind]) == set(b[kind]) == {"ig_black", "ig_uniform"}, kind
        for method in b[kind]:
            torch.testing.assert_close(a[kind][method], b[kind][method], rtol=0, atol=0)


def test_figure_data_lost_with_a_run_is_recomputed_on_rerun(tmp_path):
    """A run killed before it saved the figure data (every record stored): the rerun
    recomputes the attributions of the figure images and writes no new records."""
    root = tmp_path / "data"
    _photos(root, 3)
    assert _cli(tmp_path / "run", root, "figures.images=2").wait(timeout=600) == 0
    (tmp_path / "run" / "figures.pt").rename(tmp_path / "expected.pt")
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")
    rerun = _cli(tmp_path / "run", root, "figures.images=2")
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-2000:]
    assert "6 image x method pairs already stored" in stdout
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run" / "records.parquet"), records)
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected.pt").rename(tmp_path / "expected" / "figures.pt")
    _assert_same_figure_data(tmp_path / "run", tmp_path / "expected")


def test_same_config_twice_gives_identical_records(tmp_path):
    root = tmp_path / "data"
    _photos(root, 2)
    for name in ("a", "b"):
        assert _cli(tmp_path / name, root, "data.batch_size=2").wait(timeout=600) == 0
    a = pd.read_parquet(tmp_path / "a" / "records.parquet")
    b = pd.read_parquet(tmp_path / "b" / "records.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_no_unsafe_loading_in_the_package():
    source = "\n".join(p.read_text() for p in (ROOT / "uni").rglob("*.py"))
    loads = re.findall(r"torch\.load\(([^)]*)\)", source)
    assert loads and all("weights_only=True" in call for call in loads)
    assert not re.search(r"\bpickle\.loads?\(|(?<!\.)\beval\(|\bexec\(", source)


class _NaNForBrightImages(torch.nn.Module):
    """A classifier that returns NaN logits for images brighter than 0.5 on average."""

    def forward(self, x):
        logits = torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], dim=1) * 10
        bright = (x.mean((1, 2, 3)) > 0.5)[:, None]
        return torch.where(bright, torch.full_like(logits, float("nan")), logits)


def test_numerical_faults_become_nan_not_crashes():
    from uni.engine.loop import value_rows
    from uni.methods import explain
    from uni.metrics import REGISTRY, mufidelity

    model = _NaNForBrightImages()
    x = torch.cat([torch.full((1, 3, 16, 16), 0.2), torch.full((1, 3, 16, 16), 0.9)])
    target = torch.zeros(2, dtype=torch.long)
    result = explain(model, x, target, "ig_black", steps=4, image_ids=["dark", "bright"])
    values = mufidelity(model, x, result.attributions, target, subsets=8,
                        image_ids=["dark", "bright"])
    assert torch.isfinite(values[0]) and torch.isnan(values[1])
    # all-zero attributions and a constant score: zero variance, NaN with a note
    zero = mufidelity(model, x[:1], torch.zeros_like(x[:1]), target[:1], subsets=8,
                      image_ids=["dark"])
    assert torch.isnan(zero).all()
    rows = value_rows({"image_id": "bright"}, {"mufidelity": values}, 1, REGISTRY["mufidelity"])
    assert rows[0]["note"] == "non-finite value"


def test_tables_count_the_images_each_cell_used():
    from uni.analysis.tables import pivot, summarise

    records = pd.DataFrame({
        "image_id": ["a", "b", "c", "a", "b", "c"],
        "method": ["ig_black"] * 3 + ["uni"] * 3,
        "metric": ["mufidelity"] * 6,
        "value": [0.1, float("nan"), 0.3, 0.5, 0.6, 0.7],
    })
    summary = summarise(records)
    assert summary.set_index("method").loc["ig_black", "n"] == 2
    assert summary.set_index("method").loc["uni", "n"] == 3
    table = pivot(summary)
    assert table.loc["ig_black"].iloc[0].endswith("(2)")
    assert table.loc["uni"].iloc[0].startswith("**0.600")  # best marked

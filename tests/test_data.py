import numpy as np
import pytest
import torch
from PIL import Image

from uni.data import build_dataset, in_shard
from uni.data.folder import imagenet_label_index
from uni.errors import ConfigError

CONFIG = {"input_size": (3, 32, 32), "crop_pct": 0.875, "interpolation": "bicubic"}
RNG = np.random.default_rng(0)


def _photo(size=(48, 40)) -> np.ndarray:
    return RNG.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)


def test_embedded_has_real_photos(lite0):
    dataset = build_dataset("embedded", lite0.data_config)
    assert len(dataset) >= 6
    sample = {s.image_id: s for s in dataset}["skimage/coffee"]
    assert sample.label == -1
    assert sample.image.shape == (3, 224, 224)
    assert 0 <= sample.image.min() and sample.image.max() <= 1
    with torch.no_grad():
        assert lite0(sample.image[None]).argmax().item() == 967  # espresso


def test_nested_layout_labels_from_synset_folders(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / wnid).mkdir()
        Image.fromarray(_photo()).save(tmp_path / wnid / "a.JPEG")
    dataset = build_dataset("folder", CONFIG, root=tmp_path)
    assert [s.image_id for s in dataset] == ["n01440764/a.JPEG", "n01443537/a.JPEG"]
    assert [s.label for s in dataset] == [0, 1]
    assert all(s.image.shape == (3, 32, 32) for s in dataset)


def test_flat_layout_and_every_colour_mode(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "n01484850_great_white_shark.JPEG")
    Image.fromarray(_photo()[..., 0]).save(tmp_path / "n01494475_gray.png")  # L
    Image.fromarray(np.dstack([_photo(), _photo()[..., :1]])).save(tmp_path / "n01496331_rgba.png")
    Image.fromarray(_photo()).convert("P").save(tmp_path / "n01498041_palette.png")
    sixteen = (RNG.integers(0, 65536, (40, 48))).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "n01514668_sixteen.png")  # I;16
    Image.fromarray(_photo()).save(tmp_path / "n01514859_it's a hen.JPEG")
    dataset = build_dataset("folder", CONFIG, root=tmp_path, sample="sorted")
    samples = list(dataset)
    synsets = imagenet_label_index()
    assert [s.label for s in samples] == [synsets[s.image_id[:9]] for s in samples]
    assert samples[0].label == 2  # n01484850 is the third synset
    for s in samples:
        assert s.skip_reason is None and s.image.shape == (3, 32, 32)
        assert s.image.dtype == torch.float32 and 0 <= s.image.min() and s.image.max() <= 1
    sixteen_sample = samples[4]
    assert sixteen_sample.image.std() > 0.1  # 16-bit scaled to [0, 1], not saturated


def test_corrupt_file_is_skipped_with_reason(tmp_path, caplog):
    Image.fromarray(_photo()).save(tmp_path / "n01440764_ok.JPEG")
    (tmp_path / "n01440764_text.JPEG").write_text("not an image")
    data = (tmp_path / "n01440764_ok.JPEG").read_bytes()
    (tmp_path / "n01440764_truncated.JPEG").write_bytes(data[: len(data) // 2])
    dataset = build_dataset("folder", CONFIG, root=tmp_path)
    samples = {s.image_id: s for s in dataset}
    assert samples["n01440764_ok.JPEG"].image is not None
    for bad in ("n01440764_text.JPEG", "n01440764_truncated.JPEG"):
        assert samples[bad].image is None and samples[bad].skip_reason
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 2


def test_limit_and_shards_partition_the_images(tmp_path):
    for i in range(12):
        Image.fromarray(_photo()).save(tmp_path / f"n01440764_{i:02d}.JPEG")
    full = [s.image_id for s in build_dataset("folder", CONFIG, root=tmp_path, limit=10)]
    assert len(full) == 10
    shards = [
        [s.image_id for s in build_dataset("folder", CONFIG, root=tmp_path, limit=10, shard=i,
                                           num_shards=3)]
        for i in range(3)
    ]
    assert sorted(sum(shards, [])) == sorted(full)
    assert all(in_shard(i, k, 3) for k, ids in enumerate(shards) for i in ids)
    # start holds the first images out: the next ones, in the same (keyed random) order
    order = [s.image_id for s in build_dataset("folder", CONFIG, root=tmp_path)]
    assert order[:10] == full and order != sorted(order)
    held_out = [s.image_id for s in build_dataset("folder", CONFIG, root=tmp_path, start=10)]
    assert held_out == order[10:]
    window = [s.image_id for s in build_dataset("folder", CONFIG, root=tmp_path, start=3,
                                                limit=4)]
    assert window == full[3:7]
    options = dict(base="folder", base_options={"root": tmp_path}, corruptions=["brightness"],
                   severities=[1])
    corrupted = build_dataset("imagenet_c_synthetic", CONFIG, start=11, **options)
    assert [s.meta["base_image_id"] for s in corrupted] == order[11:]


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("imagenet", {}, "is not one of"),
        ("folder", {"root": "/nonexistent/data"}, "is not a directory"),
        ("embedded", {"limit": 0}, "data.limit"),
        ("embedded", {"start": -1}, "data.start"),
        ("embedded", {"shard": 2, "num_shards": 2}, "data.shard"),
    ],
)
def test_bad_data_settings_fail_in_one_line(name, options, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_dataset(name, CONFIG, **options)
    assert "\n" not in str(err.value)


def test_empty_folder_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="holds no image files"):
        build_dataset("folder", CONFIG, root=tmp_path)


def test_hf_offline_fails_with_what_to_do(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'imagenet-1k' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match="data=folder") as err:
        build_dataset("hf", CONFIG, path="imagenet-1k", limit=2)
    assert "\n" not in str(err.value)


def test_dev_split_accuracy_guards_preprocessing(lite0):
    """docs/design.md §7: Lite0 top-1 on the development split is ~0.89 with the tf_ architecture,
    mean = std = 0.5 and bicubic resize / centre crop; other choices lose 5-12 points."""
    from tests.conftest import SHARED_DEV

    dataset = build_dataset("folder", lite0.data_config, root=SHARED_DEV, limit=100)
    x = torch.stack([s.image for s in dataset])
    labels = torch.tensor([s.label for s in dataset])
    assert (labels >= 0).all()
    with torch.no_grad():
        predictions = torch.cat([lite0(x[i : i + 25]).argmax(-1) for i in range(0, 100, 25)])
    assert (predictions == labels).float().mean() >= 0.84


def test_imagenet_c_synthetic_is_seeded_per_image(tmp_path):
    for i in range(2):
        Image.fromarray(_photo()).save(tmp_path / f"n01440764_{i}.JPEG")
    options = dict(base="folder", base_options={"root": tmp_path},
                   corruptions=["gaussian_noise", "brightness"], severities=[1, 5])
    dataset = build_dataset("imagenet_c_synthetic", CONFIG, **options)
    assert len(dataset) == 8
    samples = {s.image_id: s for s in dataset}
    noisy = samples["n01440764_1.JPEG|gaussian_noise/5"]
    assert noisy.meta == {"corruption": "gaussian_noise", "severity": 5,
                          "base_image_id": "n01440764_1.JPEG"}
    clean = build_dataset("folder", CONFIG, root=tmp_path)[1].image
    assert (noisy.image - clean).abs().mean() > (
        samples["n01440764_1.JPEG|gaussian_noise/1"].image - clean).abs().mean()
    # the same image gets the same noise in a different dataset (limit, shard, order)
    alone = build_dataset("imagenet_c_synthetic", CONFIG, limit=2, shard=0, num_shards=1,
                          **options)
    assert torch.equal({s.image_id: s for s in alone}[noisy.image_id].image, noisy.image)
    with pytest.raises(ConfigError, match="data.corruptions"):
        build_dataset("imagenet_c_synthetic", CONFIG, base="embedded", corruptions=["rain"])


def test_imagenet_c_folder_layout(tmp_path):
    for corruption in ("brightness", "fog"):
        for severity in (1, 2):
            folder = tmp_path / corruption / str(severity) / "n01443537"
            folder.mkdir(parents=True)
            Image.fromarray(_photo()).save(folder / "x.JPEG")
    dataset = build_dataset("imagenet_c", CONFIG, root=tmp_path, corruptions=["brightness"],
                            severities=[1, 2])
    samples = list(dataset)
    assert [s.image_id for s in samples] == ["brightness/1/n01443537/x.JPEG",
                                             "brightness/2/n01443537/x.JPEG"]
    assert all(s.label == 1 and s.meta["corruption"] == "brightness" for s in samples)
    assert [s.meta["severity"] for s in samples] == [1, 2]


def _hf_imagefolder(root) -> None:
    """Two splits in the layout of `datasets`' imagefolder builder: red train images,
    blue validation images, two classes each."""
    for split, colour in (("train", (255, 0, 0)), ("validation", (0, 0, 255))):
        for i, wnid in enumerate(("n01440764", "n01443537")):
            (root / split / wnid).mkdir(parents=True)
            Image.new("RGB", (40, 40), colour).save(root / split / wnid / f"{split}{i}.png")


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("split, label, red", [
    ("train", None, True), ("validation", None, False), ("train", "dev", True),
])
def test_data_split_reaches_the_hf_loader_and_the_label_is_separate(
        tmp_path, hf_offline, split, label, red):
    """``data.split`` picks the split that is loaded; ``data.split_label`` (default: the
    split) only names the records' ``split`` column."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from uni.config_dir import CONF_DIR
    from uni.engine.checks import check_config
    from uni.engine.job import run_dataset

    root = tmp_path / "images"
    _hf_imagefolder(root)
    overrides = ["data=hf", "data.path=imagefolder", f"data.data_dir={root}",
                 f"data.split={split}", f"data.split_label={'null' if label is None else label}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    check_config(cfg)
    dataset, record_split = run_dataset(cfg["data"], CONFIG)
    assert record_split == (label or split)
    samples = list(dataset)
    assert [s.image_id for s in samples] == [f"imagefolder/{split}/0", f"imagefolder/{split}/1"]
    assert sorted(s.label for s in samples) == [0, 1]
    for s in samples:
        assert (s.image[0].mean() > 0.9) == red and (s.image[2].mean() > 0.9) != red


def test_unknown_data_option_is_one_line():
    from uni.data import check_data_options

    with pytest.raises(ConfigError, match=r"data: unknown option\(s\) \['split'\]"):
        check_data_options({"name": "folder", "root": ".", "split": "train"})
    check_data_options({"name": "hf", "path": "x", "revision": "main"})  # to load_dataset

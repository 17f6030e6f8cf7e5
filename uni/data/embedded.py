"""The offline sample: real photos shipped inside installed packages (docs/design.md §7)."""

from __future__ import annotations

from pathlib import Path

from uni.data.base import ImageDataset


def embedded_photos() -> list[tuple[str, Path]]:
    """``(image_id, path)`` of photos from scikit-image, scikit-learn and matplotlib."""
    import matplotlib
    import skimage
    import sklearn

    skimage_dir = Path(skimage.__file__).parent / "data"
    sklearn_dir = Path(sklearn.__file__).parent / "datasets" / "images"
    matplotlib_dir = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [
        ("skimage/chelsea", skimage_dir / "chelsea.png"),
        ("skimage/coffee", skimage_dir / "coffee.png"),
        ("skimage/astronaut", skimage_dir / "astronaut.png"),
        ("skimage/rocket", skimage_dir / "rocket.jpg"),
        ("skimage/motorcycle", skimage_dir / "motorcycle_left.png"),
        ("sklearn/china", sklearn_dir / "china.jpg"),
        ("sklearn/flower", sklearn_dir / "flower.jpg"),
        ("matplotlib/grace_hopper", matplotlib_dir / "grace_hopper.jpg"),
    ]
    return photos


class EmbeddedDataset(ImageDataset):
    """Eight real photos (cat, espresso, astronaut, rocket, motorcycle, palace, flower,
    portrait); no ImageNet labels, so the explained class is the model's prediction."""

    def __init__(self, data_config: dict):
        super().__init__([(i, path, -1) for i, path in embedded_photos()], data_config)

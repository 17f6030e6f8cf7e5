"""Shared fixtures: the offline ImageNet model, small random-weight timm models, photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from uni.data import build_dataset
from uni.models import load_model

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-dev"


@pytest.fixture(scope="session")
def lite0():
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def photos(lite0):
    """Two embedded photos at 224 px (cat, espresso: the first two by name, the ones the
    tests' tolerances were set on) with their ids."""
    dataset = build_dataset("embedded", lite0.data_config, limit=2, sample="sorted")
    samples = [dataset[i] for i in range(len(dataset))]
    return torch.stack([s.image for s in samples]), [s.image_id for s in samples]


@pytest.fixture(scope="session")
def resnet():
    torch.manual_seed(0)
    return load_model("resnet18", pretrained=False, num_classes=10)


@pytest.fixture(scope="session")
def vit():
    torch.manual_seed(0)
    return load_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32, patch_size=8
    )


@pytest.fixture
def small_images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 32, 32, generator=generator)


class Linear(nn.Module):
    """``F_0(x) = w . x`` (logit of class 0; class 1 has logit 0)."""

    def __init__(self, shape=(3, 16, 16), seed=0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        score = (x * self.w).flatten(1).sum(1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from uni.errors import ConfigError
from uni.models import class_score, load_model


def _whole_photo(name: str) -> torch.Tensor:
    image = torch.tensor(getattr(skdata, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(224, 224), mode="bicubic", antialias=True).clamp(0, 1)


def test_offline_lite0_classifies_skimage_photos(lite0):
    with torch.no_grad():
        assert lite0(_whole_photo("chelsea")).argmax().item() == 285  # Egyptian cat
        assert lite0(_whole_photo("coffee")).argmax().item() == 967  # espresso


def test_wrapper_takes_pixel_space_and_exposes_preprocessing(lite0):
    assert not lite0.training
    assert lite0.input_size == (3, 224, 224)
    assert lite0.data_config["interpolation"] == "bicubic"
    assert torch.allclose(lite0.mean, torch.full((1, 3, 1, 1), 0.5))


def test_offline_weights_need_the_tf_architecture_and_its_normalisation(photos, lite0):
    """The non-tf_ architecture (PyTorch padding) or ImageNet mean/std change predictions."""
    x, _ = photos
    with torch.no_grad():
        reference = lite0(x).softmax(-1)
        wrong_norm = lite0.net((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                               / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)).softmax(-1)
    assert (reference - wrong_norm).abs().max() > 0.05


def test_unknown_model_is_one_line_error():
    with pytest.raises(ConfigError, match="not a timm model"):
        load_model("efficientnet_lite9")


def test_hub_download_offline_says_what_to_do(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return original(*args, **kwargs)

    original = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match="model.checkpoint=PATH") as err:
        load_model("resnet18")
    assert "\n" not in str(err.value)


def test_local_checkpoint_loads_with_weights_only(tmp_path, resnet):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": resnet.net.state_dict()}, path)
    loaded = load_model("resnet18", pretrained=True, checkpoint=path, num_classes=10)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), resnet(x))


def test_class_score_prob_and_logit():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([2, 0])
    assert torch.allclose(class_score(logits, target, "logit"), torch.tensor([3.0, 0.0]))
    assert torch.allclose(class_score(logits, target, "prob"), logits.softmax(-1)[[0, 1], [2, 0]])
    with pytest.raises(ConfigError):
        class_score(logits, target, "probability")

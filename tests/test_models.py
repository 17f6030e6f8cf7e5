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
    """The non-tf_ architecture (PyTorch padding) or ImageNet mean/std change the
    predicted probabilities of the offline weights."""
    import timm

    x, _ = photos
    pytorch_padding = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    pytorch_padding.load_state_dict(lite0.net.state_dict())  # the same tensor names
    with torch.no_grad():
        reference = lite0(x).softmax(-1)
        wrong_norm = lite0.net((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                               / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)).softmax(-1)
        wrong_padding = pytorch_padding((x - lite0.mean) / lite0.std).softmax(-1)
    assert (reference - wrong_norm).abs().max() > 0.05
    assert (reference - wrong_padding).abs().max() > 0.05


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


@pytest.mark.parametrize("name", ["lite0", "resnet"])
def test_fast_runtime_computes_the_same_function(name, request, photos):
    """Folding BatchNorm and channels_last change only float rounding: in float64 the
    outputs and input gradients agree to 1e-9; every BatchNorm of these two nets is folded
    and the original model is untouched (it stays the trained parameterisation). In
    float32, rounding moves ReLU6 inputs across their kinks: Lite0's input gradients then
    differ by up to ~0.6% (docs/performance-history.md)."""
    import copy

    from uni.models import fold_batchnorm_into_convs, set_runtime, trained_parameterisation

    model = copy.deepcopy(request.getfixturevalue(name)).double()
    x = photos[0][:2] if name == "lite0" else torch.rand(
        2, *model.input_size, generator=torch.Generator().manual_seed(0))
    x = x.double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = set_runtime(model, fold_batchnorm=True, channels_last=True)
    assert trained_parameterisation(fast) is model and trained_parameterisation(model) is model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert fold_batchnorm_into_convs(fast.net) == 0  # nothing left to fold

    def score_and_gradient(m):
        xr = x.clone().requires_grad_(True)
        score = class_score(m(xr), torch.tensor([1, 2])).sum()
        return score.detach(), torch.autograd.grad(score, xr)[0]

    (s0, g0), (s1, g1) = score_and_gradient(model), score_and_gradient(fast)
    assert torch.allclose(s0, s1, rtol=1e-9, atol=0)
    assert ((g0 - g1).abs().sum() / g0.abs().sum()).item() < 1e-9


def test_runtime_options_are_checked():
    from uni.models import set_runtime

    with pytest.raises(ConfigError, match="precision"):
        set_runtime(load_model("resnet18", pretrained=False, num_classes=10), precision="fp8")


class _Branches(torch.nn.Module):
    """conv(bias) -> BN(no affine); a conv whose output also feeds a skip (not folded); a
    conv subclass (not folded: it may compute something else); a grouped conv -> BN."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, bias=True)
        self.bn_a = torch.nn.BatchNorm2d(4, affine=False)
        self.b, self.bn_b = torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4)
        self.c, self.bn_c = type("Sub", (torch.nn.Conv2d,), {})(4, 4, 1), torch.nn.BatchNorm2d(4)
        self.d, self.bn_d = torch.nn.Conv2d(4, 4, 3, groups=4, padding=1), torch.nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.bn_a(self.a(x))
        y = self.b(x)
        x = self.bn_b(y) + y
        return self.bn_d(self.d(self.bn_c(self.c(x))))


def test_fold_batchnorm_only_where_it_is_the_same_function():
    import copy

    from uni.models import fold_batchnorm_into_convs

    torch.manual_seed(0)
    net = _Branches().double()
    for norm in (net.bn_a, net.bn_b, net.bn_c, net.bn_d):  # non-trivial statistics
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        if norm.affine:
            norm.weight.data.uniform_(0.5, 2)
            norm.bias.data.uniform_(-1, 1)
    net.eval()
    folded = copy.deepcopy(net)
    assert fold_batchnorm_into_convs(folded) == 2  # a and d
    assert all(isinstance(m, torch.nn.Identity) for m in (folded.bn_a, folded.bn_d))
    assert all(isinstance(m, torch.nn.BatchNorm2d) for m in (folded.bn_b, folded.bn_c))
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), rtol=1e-12, atol=1e-12)

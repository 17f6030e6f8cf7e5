"""The randomisation sanity checks (uni.metrics.sanity) as a metric: a method that reads the
model loses its map under full randomisation; a trivial map does not change at all."""

from __future__ import annotations

import pytest
import torch

from uni.data import build_dataset
from uni.methods import Explainer, explain
from uni.metrics import sanity
from uni.metrics.sanity import block_groups, randomised, similarities, ssim


def test_block_groups_and_randomisation_are_keyed(resnet):
    names = [name for name, _ in block_groups(resnet)]
    assert names == ["conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
                     "layer3.0", "layer3.1", "layer4.0", "layer4.1", "fc"]
    one, two = randomised(resnet, ["fc", "layer4.1"], seed=5), randomised(resnet, ["fc"], 5)
    assert torch.equal(one.net.fc.weight, two.net.fc.weight)  # keyed on (seed, group)
    assert not torch.equal(one.net.fc.weight, resnet.net.fc.weight)
    assert torch.equal(two.net.layer4[1].conv1.weight, resnet.net.layer4[1].conv1.weight)
    assert not torch.equal(one.net.layer4[1].conv1.weight, resnet.net.layer4[1].conv1.weight)


def test_similarities_of_a_map_with_itself_and_its_negation():
    a = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    same = similarities(a, a, k=20)
    for value in same.values():
        torch.testing.assert_close(value, torch.ones(2))
    flipped = similarities(a, -a, k=20)
    torch.testing.assert_close(flipped["spearman"], -torch.ones(2))
    torch.testing.assert_close(flipped["spearman_abs"], torch.ones(2))
    noise = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    assert (ssim(noise, noise.flip(-1)) < 0.2).all()


def test_a_constant_map_is_as_similar_as_its_changes_say():
    a = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    constant = torch.ones(2, 3, 16, 16)
    for quantity in ("spearman", "spearman_abs"):
        torch.testing.assert_close(similarities(constant, constant)[quantity], torch.ones(2))
        torch.testing.assert_close(similarities(a, torch.zeros_like(a))[quantity],
                                   torch.zeros(2))  # collapsed: the largest change


def test_a_runtime_model_is_randomised_in_its_trained_parameterisation(lite0):
    """With BatchNorm folded, the forward pass and the trained parameters UNI's unlearning
    steps in (``trained_parameterisation``) are one random network; the runtime's block
    groups; a top-level BatchNorm goes with the conv before it."""
    from uni.models import set_runtime, trained_parameterisation

    fast = set_runtime(lite0, fold_batchnorm=True)
    names = [name for name, _ in block_groups(fast)]
    assert names == ["conv_stem", *(f"blocks.{i}" for i in range(7)), "conv_head",
                     "classifier"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    head = randomised(fast, ["classifier", "conv_head"], seed=3)
    logits = randomised(fast, ["classifier"], seed=3)
    trained = trained_parameterisation(head)
    assert trained is not lite0 and head.runtime_options == fast.runtime_options
    assert not torch.equal(trained.net.bn2.weight, lite0.net.bn2.weight)
    assert torch.equal(trained_parameterisation(logits).net.bn2.weight, lite0.net.bn2.weight)
    with torch.no_grad():
        torch.testing.assert_close(head(x), trained(x), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(trained(x), lite0(x), atol=1e-2)
        torch.testing.assert_close(fast(x), lite0(x), rtol=1e-4, atol=1e-4)  # untouched


def test_ig_black_fails_to_survive_full_randomisation_and_edges_survive(lite0):
    """EfficientNet-Lite0 on the two embedded photos (at 112 px, 4 IG steps, to keep the
    twelve re-explanations cheap): at full cascading randomisation IG-black's |A| has
    Spearman < 0.5 to the original; the Sobel map is the same map (1.0) at every step."""
    dataset = build_dataset("embedded", dict(lite0.data_config, input_size=(3, 112, 112)),
                            limit=2)
    x = torch.stack([dataset[i].image for i in range(2)])
    ids = [dataset[i].image_id for i in range(2)]
    with torch.no_grad():
        target = lite0(x).argmax(-1)
    full = len(block_groups(lite0))
    for method, options in (("ig_black", {"steps": 4, "internal_batch_size": 8}),
                            ("trivial_edges", {})):
        a = explain(lite0, x, target, method, image_ids=ids, **options).attributions
        values = sanity(lite0, x, a, target, explainer=Explainer(lite0, method, options),
                        modes=["cascading"], image_ids=ids)
        last = values[f"sanity_cascading_spearman_abs@{full}"]
        if method == "ig_black":
            assert (last < 0.5).all(), last
            assert (values["sanity_random_logit_spearman_abs"] < 1).all()
        else:
            assert all(torch.equal(v, torch.ones(2)) for v in values.values())


def test_cascade_maps_and_their_figure(resnet, small_images, tmp_path):
    from uni.analysis.sanity_figure import cascade_maps, draw

    x, target, ids = small_images[:1], torch.tensor([0]), ["a"]
    edges = cascade_maps(resnet, x, target, Explainer(resnet, "trivial_edges"), ids)
    ig = cascade_maps(resnet, x, target, Explainer(resnet, "ig_black", {"steps": 2}), ids)
    assert [label for label, _ in ig][:2] == ["trained", "fc"] and len(ig) == 12
    assert ig[-1][0] == "conv1" and not torch.equal(ig[0][1], ig[-1][1])
    assert all(torch.equal(maps, edges[0][1]) for _, maps in edges)
    rows = {m: [(label, maps[0].numpy()) for label, maps in found]
            for m, found in (("ig_black", ig), ("trivial_edges", edges))}
    path = draw(x[0].numpy(), rows, tmp_path / "figures" / "sanity_maps_a.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sanity_experiment_checks_every_method_of_faithfulness():
    """Issue 26: the "Sanity checks" section has every method of the faithfulness
    experiment (issue 31's rivals and controls too), in the same order."""
    from tests.test_selection import composed

    assert (list(composed("experiment=sanity")["method"])
            == list(composed("experiment=faithfulness")["method"]))


def test_the_figure_script_refuses_a_folder_that_is_not_a_run_in_one_line(tmp_path):
    from uni.analysis.sanity_figure import main

    with pytest.raises(SystemExit, match="not a run directory"):
        main([str(tmp_path)])

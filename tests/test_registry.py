"""The registries own the contract: metric directions, display order and citations
(uni.metrics.REGISTRY), method display order (uni.methods.METHODS), and the Explainer
that metrics which explain again receive instead of a method's name."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import Linear
from uni.analysis.tables import pivot, summarise, with_derived_metrics
from uni.errors import ConfigError
from uni.methods import METHODS, TRIVIAL_METHODS, Explainer, explain, method_order
from uni.metrics import (
    DIRECTIONS,
    METRICS,
    REGISTRY,
    check_entry_name,
    direction,
    lower_is_better,
    metric_order,
    metric_spec,
)
from uni.metrics.robustness import ATTACKS

METRICS_DIR = Path(__file__).resolve().parents[1] / "uni" / "metrics"
# the "lower is better" rule the report kept before the registry (robustness' side values
# aside), with the lower-is-better metrics added since (ROAD's MoRF, completeness, the
# sanity checks' similarities): the registry must agree with it on every name records hold
OLD_LOWER_IS_BETTER = re.compile(
    r"^(deletion|stability_l1|stability_gap|completeness|road_morf|sanity_)")


def recordable_names() -> list[tuple[str, str]]:
    """(metric, record name) for every value the runner can record with each metric's
    default options (every attack for robustness), the derived metrics and the
    diagnostics the report turns into records."""
    names = []
    for name, spec in REGISTRY.items():
        options = {"attack": list(ATTACKS)} if name == "robustness" else spec.defaults()
        if spec.fn is None:
            names.append((name, name))
        else:
            names += [(name, record) for record in spec.records(name, options)]
    return names


@pytest.mark.parametrize("metric,record", recordable_names())
def test_every_recordable_metric_has_a_registered_direction(metric, record):
    assert metric_spec(record).name == metric
    assert direction(record) in DIRECTIONS
    if not re.fullmatch(r"robustness_\w+_(linf|skipped)", record):
        assert lower_is_better(record) == bool(OLD_LOWER_IS_BETTER.match(record)), record


def test_directions_of_qualified_names_and_side_values():
    assert direction("deletion__blur__10__prob") == "lower"  # a protocol-grid entry
    assert direction("deletion_logit") == "lower"  # an entry named after its metric
    assert direction("mufidelity[texture/frequency]") == "higher"  # an ImageNet-C family
    assert direction("insertion-deletion") == "higher"
    assert direction("stability_spearman@4") == "higher"
    assert direction("robustness_topk_skipped") == "lower"
    assert direction("robustness_topk_linf") is None  # the attack's size ranks no method


def test_an_unregistered_metric_fails_with_a_clear_message():
    with pytest.raises(ConfigError, match=r"metric 'sharpness' is not registered") as err:
        direction("sharpness")
    assert "\n" not in str(err.value) and "mufidelity" in str(err.value)
    records = pd.DataFrame({"image_id": ["a", "b"], "method": ["uni", "uni"],
                            "metric": ["sharpness", "sharpness"], "value": [0.1, 0.2]})
    with pytest.raises(ConfigError, match="sharpness"):
        pivot(summarise(records))


def test_an_eval_entry_must_be_named_after_its_metric():
    check_entry_name("deletion", {"metric": "deletion"})
    check_entry_name("deletion_logit", {"metric": "deletion", "output": "logit"})
    check_entry_name("deletion__blur__10__prob", {"metric": "deletion"})
    check_entry_name("anything", {"metric": "robustness"})  # records its own names
    with pytest.raises(ConfigError, match=r"eval entry 'del_logit' \(metric deletion\)"):
        check_entry_name("del_logit", {"metric": "deletion"})
    with pytest.raises(ConfigError, match="insertion"):  # another metric's name
        check_entry_name("insertion_mine", {"metric": "deletion"})


def test_tables_follow_the_registries_order_and_direction():
    metrics = ["stability_l1@16", "robustness_topk_linf", "insertion", "stability_l1@2",
               "deletion", "mufidelity", "robustness_fgsm_spearman", "noise_floor_spearman"]
    shifts = {"uni": 0.3, "uni_eps8": 0.2, "ig_black": 0.1, "deeplift": 0.5,
              "expected_gradients": 0.4}
    methods = list(shifts)
    records = pd.DataFrame([
        {"image_id": f"img{i}", "method": method, "metric": metric,
         "value": float(m + i) + shifts[method]}
        for i in range(3) for m, metric in enumerate(metrics) for method in methods
    ])
    table = pivot(summarise(records))
    assert [c.rsplit(" ", 1)[0] for c in table.columns] == metric_order(metrics) == [
        "mufidelity", "deletion", "insertion", "robustness_fgsm_spearman",
        "robustness_topk_linf", "noise_floor_spearman", "stability_l1@2", "stability_l1@16"]
    assert list(table.index) == ["ig_black", "deeplift", "expected_gradients", "uni",
                                 "uni_eps8"]
    attribution_methods = [m for m in METHODS if m not in TRIVIAL_METHODS]  # floors close
    assert attribution_methods[-1] == "uni" and method_order(methods) == list(table.index)
    # DeepLIFT has the largest values, IG-black the smallest
    assert table.loc["deeplift", "mufidelity ↑"].startswith("**")
    assert not table.loc["deeplift", "deletion ↓"].startswith("**")
    assert table.loc["ig_black", "deletion ↓"].startswith("**")
    assert "robustness_topk_linf" in table.columns  # a side value: no arrow, no best
    assert not any(cell.startswith("**") for cell in table["robustness_topk_linf"])


def test_derived_metrics_are_computed_from_their_registration():
    records = pd.DataFrame({
        "image_id": ["a", "a", "b"], "model": "m", "method": "uni", "config_hash": "h",
        "metric": ["insertion", "deletion", "insertion"], "value": [0.9, 0.2, 0.5]})
    derived = with_derived_metrics(records)
    difference = derived[derived["metric"] == "insertion-deletion"]
    assert REGISTRY["insertion-deletion"].derived_from == ("insertion", "deletion")
    assert difference["value"].tolist() == pytest.approx([0.7, float("nan")], nan_ok=True)


def test_every_metric_cites_its_paper_in_the_field_and_its_module_docstring():
    for name, spec in REGISTRY.items():
        years = re.findall(r"\b(?:19|20)\d\d\b", spec.citation)
        assert years, name
        if spec.fn is not None:
            docstring = inspect.getmodule(spec.fn).__doc__
            assert all(year in docstring for year in years), name


def test_metrics_never_name_a_method():
    """Metrics that explain again get an Explainer: no metric module looks a method up."""
    for path in METRICS_DIR.glob("*.py"):
        source = path.read_text()
        for method in METHODS:
            assert f'"{method}"' not in source and f"'{method}'" not in source, (path, method)
        assert "method_options" not in source and ".func is" not in source, path


def test_every_straight_line_method_gives_its_baselines():
    for name, spec in METHODS.items():
        assert (spec.straight_line is False) == (spec.baselines is None), name


def test_an_explainer_is_the_method_with_its_options():
    model = Linear()
    x, ids = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), ["a", "b"]
    target = model(x).argmax(-1)
    explainer = Explainer(model, "ig_uniform", {"steps": 2, "samples": 2}, output="logit")
    assert torch.equal(
        explainer(x, target, image_ids=ids, seed=1).attributions,
        explain(model, x, target, "ig_uniform", output="logit", image_ids=ids, seed=1,
                steps=2, samples=2).attributions)
    assert explainer.restarts and explainer.straight_line
    assert explainer.option("steps") == 2 and explainer.option("rule") == "right"
    assert explainer.option("internal_batch_size") == 4  # the method's own default
    assert Explainer(model, "expected_gradients").option("samples") == 8
    assert not Explainer(model, "ig_black").restarts
    assert not Explainer(model, "blur_ig").straight_line
    assert set(METRICS) >= {n for n, s in REGISTRY.items() if s.needs_explainer}

"""uni.catalog: the registries' metadata, read from each method's and metric's own file
without torch, agrees with the live registries."""

import subprocess
import sys
from pathlib import Path

import pytest

from uni import catalog
from uni.methods import METHODS, TRIVIAL_METHODS, method_order
from uni.methods.controls import CONTROLS
from uni.methods.gradient import WHICH as GRADIENT_MAPS
from uni.metrics import REGISTRY, direction, metric_order
from uni.metrics.fills import FILLS

ROOT = Path(__file__).resolve().parents[1]


def test_the_catalog_imports_neither_torch_nor_timm():
    code = ("import sys, uni.catalog as c; c.methods(); c.metrics(); c.fills(); "
            "c.direction('deletion'); "
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('torch', 'timm')))[:5]")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_methods_agree_with_the_live_registry():
    assert list(catalog.methods()) == list(METHODS)  # every method, in display order
    for name, spec in METHODS.items():
        assert catalog.method_info(name) == spec.info
    assert catalog.floor_methods() == TRIVIAL_METHODS
    controls = {*CONTROLS, *GRADIENT_MAPS, "uni_paper"}
    assert {n for n, i in catalog.methods().items() if i.group == "control"} == controls
    assert catalog.not_rivals() == controls | {"uni_idgi"}  # uni + IDGI, a config entry
    names = ["uni", "my_method", "trivial_noise", "ig_black", "uni_idgi", "deeplift"]
    assert catalog.method_order(names) == method_order(names) == [
        "ig_black", "deeplift", "uni", "trivial_noise", "my_method", "uni_idgi"]


def test_metrics_agree_with_the_live_registry():
    assert list(catalog.metrics()) == list(REGISTRY)
    for name, spec in REGISTRY.items():
        assert catalog.metrics()[name] == spec.info  # scores, citation, derivation, order
    derived = catalog.metrics()["insertion-deletion"]
    assert derived.derived_from == ("insertion", "deletion") and derived.combine(5, 3) == 2
    assert {n for n, i in catalog.metrics().items() if i.diagnostic} == {
        "monotonicity", "completeness_gap"}
    records = ["stability_l1@16", "stability_l1@2", "sanity_random_logit_ssim", "mufidelity",
               "robustness_topk_linf", "deletion__blur__10__prob", "insertion-deletion",
               "road_morf", "mufidelity[texture/frequency]", "noise_floor_spearman"]
    assert catalog.metric_order(records) == metric_order(records)
    assert [catalog.direction(r) for r in records] == [direction(r) for r in records]
    assert catalog.fills() == FILLS


def test_a_method_the_catalog_does_not_hold_is_an_attribution_method_listed_last():
    info = catalog.method_info("my_method")
    assert info.group == "attribution method" and info.order > max(
        i.order for i in catalog.methods().values())


def test_a_catalog_that_is_not_a_literal_is_refused(tmp_path):
    source = tmp_path / "method.py"
    source.write_text('NAME = "x"\nCATALOG = [{"name": NAME, "order": len(NAME)}]\n')
    with pytest.raises(ValueError, match=r"method.py:2: CATALOG is not a literal"):
        catalog._Constants(source)["CATALOG"]
    source.write_text('ORDER = 3\nCATALOG = [{"name": f"my_{ORDER}", "order": ORDER + 1}]\n')
    assert catalog._Constants(source)["CATALOG"] == [{"name": "my_3", "order": 4}]

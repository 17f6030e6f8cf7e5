"""The engine's shape (issue 29): the loop is short, no engine module names a method or a
metric (what one needs of the run is a field of its spec), and the run imports no
analysis."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_contract import config
from uni.engine.checks import check_config
from uni.engine.identity import keyed_config, record_keys
from uni.errors import ConfigError
from uni.methods import METHODS
from uni.metrics import REGISTRY

ENGINE = Path(__file__).resolve().parents[1] / "uni" / "engine"
LOOP = ENGINE / "loop.py"
MAX_LOOP_LINES = 300
# the modules that read records back: analysis, never imported by a run
ANALYSIS = ("uni.analysis", "uni.experiments")


def names_in(source: str) -> set[str]:
    """Every string literal and identifier of ``source`` (definitions, arguments, keyword
    arguments, attributes and imported names; not the dotted module paths of imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found |= {node.name, node.asname} - {None}
    return found


def test_the_loop_is_short_and_no_engine_module_names_a_method_or_metric():
    assert len(LOOP.read_text().splitlines()) <= MAX_LOOP_LINES
    registered = set(METHODS) | set(REGISTRY)
    modules = sorted(ENGINE.glob("*.py"))
    assert LOOP in modules
    for module in modules:
        assert not names_in(module.read_text()) & registered, module.name


def test_the_name_check_sees_a_branch_on_a_method_or_a_metric():
    branch = 'if job.kinds[method] == "deeplift" or metric.startswith("robustness"):\n    pass'
    assert names_in(branch) & set(METHODS) == {"deeplift"}
    assert "robustness" in names_in(branch) & set(REGISTRY)
    assert "deletion" in names_in("from uni.metrics import deletion as score")
    assert "uni" not in names_in("from uni.methods import explain")  # the package's name


def test_a_run_imports_no_analysis():
    code = ("import sys, uni.engine.loop, uni.engine.plan, uni.rekey; "
            f"print([m for m in sys.modules if m.startswith({ANALYSIS!r})])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_compile_conflicts_come_from_the_specs_and_are_named():
    with pytest.raises(ConfigError, match=r"with method dl \(|with method dl;"):
        check_config(config("method=[ig_black]", "+method.dl={kind:deeplift}",
                            "runtime.compile=true"))
    with pytest.raises(ConfigError, match=r"eval entry robustness \(hvp=autograd\)"):
        check_config(config("eval=[robustness]", "eval.robustness.hvp=autograd",
                            "runtime.compile=true"))
    check_config(config("eval=[robustness]", "runtime.compile=true"))  # no conflict


def test_a_controls_key_follows_the_runs_uni_through_its_spec():
    """``distance: uni`` is keyed on the run's UNI options, for a ``kind`` variant of a
    control too; another UNI setting changes the control's key."""
    def control_key(eps):
        cfg = keyed_config(config("method=[uni,adv_baseline]", f"method.uni.eps={eps}",
                                  "+method.near={kind:random_ball,distance:uni}"))
        assert cfg["method"]["near"]["distance"]["kind"] == "uni"
        assert cfg["method"]["near"]["distance"]["eps"] == eps
        return record_keys(cfg, cfg["data"]).explanations

    one, two = control_key(0.25), control_key(0.5)
    assert one["adv_baseline"] != two["adv_baseline"] and one["near"] != two["near"]


def test_robustness_notes_why_a_value_is_missing():
    note = REGISTRY["robustness"].skip_note
    values = {"robustness_topk_spearman": torch.tensor([float("nan")] * 3),
              "robustness_topk_skipped": torch.tensor([1.0, float("nan"), 0.0])}
    assert note("robustness_topk_spearman", values, 0) == "label not kept under attack"
    assert note("robustness_topk_spearman", values, 1).startswith("not applicable")
    assert note("robustness_topk_spearman", values, 2) is None  # a numerical fault

"""The config contract (issue 13): every setting that cannot work fails in one line
naming it, before any work (no model is loaded here)."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.config_dir import CONF_DIR
from uni.engine.checks import check_config
from uni.engine.identity import record_keys
from uni.errors import ConfigError
from uni.methods import METHODS, OPTION_LIMITS, check_method_options
from uni.methods.controls import CONTROLS


def config(*overrides: str) -> dict:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_method_config_and_experiment_passes():
    every = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
    assert len(every) >= 30 and {"ig_white", "ig_uniform_tuned", "uni_idgi"} <= set(every)
    cfg = config(f"method=[{','.join(every)}]")
    assert sorted(cfg["method"]) == every
    check_config(cfg)
    for experiment in sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")):
        check_config(config(f"experiment={experiment}"))


def test_every_method_option_has_a_type_and_numeric_ones_a_range():
    # Expected Gradients' reference: "split", "batch" or (from Python) a tensor of images
    untyped = {("expected_gradients", "reference")}
    # BIG's radii (a list); a control's distance: "uni", "uni_paper", a number, or (from
    # the runner) the options of the run's UNI
    untyped |= {("big", "eps")} | {(c, "distance") for c in CONTROLS}
    for name, spec in METHODS.items():
        for option, setting in spec.option_settings().items():
            assert setting.type is not None or (name, option) in untyped, (name, option)
            if setting.type in (int, float, str):
                assert option in OPTION_LIMITS, (name, option)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=ig_blur", "+method.ig_blur.sigmaa=3"],
         "method.ig_blur: unknown option(s) ['sigmaa']; allowed: ['idgi', "
         "'internal_batch_size', 'kind', 'rule', 'sigma', 'steps']"),
        (["method=uni", "+method.uni.etaa=0.1"], "method.uni: unknown option(s) ['etaa']"),
        (["method=ig_black", "+method.ig_black.samples=4"],
         "method.ig_black: unknown option(s) ['samples']"),
        (["method=deeplift", "+method.deeplift.steps=4"],
         "method.deeplift: unknown option(s) ['steps']"),
        (["method=deeplift", "+method.deeplift.sigma=4"],
         "method.deeplift: unknown option(s) ['sigma']"),
        (["method=ig_black", "+method.ig_black.output=logit"], "unknown option(s) ['output']"),
        (["method=uni", "+method.uni_b={kind:unii}"], "method.uni_b.kind='unii' is not one of"),
        (["attribution.internal_batch_size=0"],
         "attribution.internal_batch_size=0 must be an integer >= 1"),
        (["method.ig_black.internal_batch_size=0"],
         "method.ig_black.internal_batch_size=0 must be an integer >= 1"),
        (["attribution.steps=0"], "attribution.steps=0 must be an integer >= 1"),
        (["attribution.rule=simpson"], "attribution.rule='simpson' is not one of"),
        (["attribution.rule=trapezoid", "attribution.steps=1"], "trapezoid needs steps >= 2"),
        (["method=uni", "method.uni.eps=-0.1"], "method.uni.eps=-0.1 must be a finite number >= 0"),
        (["method=uni", "method.uni.pgd_steps=-1"], "method.uni.pgd_steps=-1 must be an integer"),
        (["method=uni", "method.uni.eta=0"], "method.uni.eta=0 must be a finite number > 0"),
        (["method=uni", "method.uni.eta=inf"], "method.uni.eta=inf must be a finite number > 0"),
        (["method=uni", "method.uni.eta=nan"], "method.uni.eta=nan must be a finite number > 0"),
        (["method=uni", "method.uni.unlearn_until=0"],
         "method.uni.unlearn_until=0 must be a finite number in (0, 1] or null"),
        (["method=uni", "method.uni.unlearn_until=1.5"], "unlearn_until=1.5"),
        (["method=uni", "method.uni.norm=l3"], "method.uni.norm='l3' is not one of ['linf', 'l2']"),
        (["method=uni", "method.uni.pgd_update=sgd"], "method.uni.pgd_update='sgd' is not one of"),
        (["method=uni", "method.uni.pgd_schedule=step"], "pgd_schedule='step' is not one of"),
        (["method=uni", "method.uni.unlearn_step=big"], "unlearn_step='big' is not one of"),
        (["method=uni", "method.uni.unlearn_mode=gpu"], "unlearn_mode='gpu' is not one of"),
        (["method=uni", "method.uni.kl_direction=both"], "kl_direction='both' is not one of"),
        (["method=uni", "method.uni.random_start=maybe"],
         "method.uni.random_start='maybe' must be true or false"),
        (["method=uni", "method.uni.eps=4/255"], "method.uni.eps='4/255' must be a finite number"),
        (["method=deeplift", "method.deeplift.baseline=grey"], "baseline='grey' is not one of"),
        (["method=ig_gaussian", "method.ig_gaussian.samples=0"], "samples=0 must be an integer"),
    ],
)
def test_bad_method_setting_is_one_line(overrides, expected):
    with pytest.raises(ConfigError) as err:
        check_config(config(*overrides))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_options_of_the_chosen_baseline_and_kind_entries_are_allowed():
    check_method_options("deeplift", {"baseline": "blur", "sigma": 3.0})
    check_method_options("uni_eps8", {"kind": "uni", "eps": 8 / 255, "steps": 4})
    check_method_options("ig_blur", {"sigma": 0, "steps": 1})  # int for a float is fine
    with pytest.raises(ConfigError, match="unknown option"):
        check_method_options("deeplift", {"baseline": "black", "sigma": 3.0})
    with pytest.raises(ConfigError, match="must be an integer"):
        check_method_options("ig_black", {"steps": 2.5})
    with pytest.raises(ConfigError, match="must be an integer"):
        check_method_options("ig_black", {"steps": True})


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["data.limit=abc"], "data.limit='abc' must be an integer >= 1 or null"),
        (["data.limit=1.5"], "data.limit=1.5 must be an integer >= 1 or null"),
        (["data.limit=0"], "data.limit=0 must be an integer >= 1 or null"),
        (["data.start=x"], "data.start='x' must be an integer >= 0"),
        (["data.shard=1"], "data.shard=1 must be in [0, data.num_shards=1)"),
        (["data.num_shards=two"], "data.num_shards='two' must be an integer >= 1"),
        (["data.batch_size=abc"], "data.batch_size='abc' must be an integer >= 1"),
        (["data.batch_size=0"], "data.batch_size=0 must be an integer >= 1"),
        (["data.num_workers=-1"], "data.num_workers=-1 must be an integer >= 0"),
        (["eval.batch_size=big"], "eval.batch_size='big' must be an integer >= 1"),
        (["figures.images=all"], "figures.images='all' must be an integer >= 0"),
        (["seed=abc"], "seed='abc' must be an integer"),
        (["runtime.channels_last=yes"], "runtime.channels_last='yes' must be true or false"),
        (["data=hf", "data.streaming=maybe"], "data.streaming='maybe' must be true or false"),
        (["data=imagenet_c_synthetic", "data.seed=x"], "data.seed='x' must be an integer"),
        (["attribution.steps=many"], "attribution.steps='many' must be an integer >= 1"),
        (["method=uni", "method.uni.pgd_steps=abc"], "method.uni.pgd_steps='abc' must be"),
        (["eval.mufidelity.grid=abc"], "eval.mufidelity.grid='abc' must be a positive integer"),
    ],
)
def test_wrong_type_is_one_line(overrides, expected):
    with pytest.raises(ConfigError) as err:
        check_config(config(*overrides))
    assert expected in str(err.value) and "\n" not in str(err.value)


# --- record keys: a row's identity is its method's and its own metric's options -----------


def _keys(*overrides):
    return record_keys(config(*overrides), {})


def test_a_metrics_records_keep_their_key_when_another_metric_is_added_or_batched():
    alone = _keys("method=[ig_black,uni]", "eval=[mufidelity]")
    both = _keys("method=[ig_black,uni]", "eval=[mufidelity,deletion]")
    batched = _keys("method=[ig_black,uni]", "eval=[mufidelity]", "eval.batch_size=3")
    for method in ("ig_black", "uni"):
        assert alone.entries[method]["mufidelity"] == both.entries[method]["mufidelity"]
        assert alone.entries[method] == batched.entries[method]
        assert both.entries[method]["deletion"] != both.entries[method]["mufidelity"]
    assert alone.explanations == both.explanations


def test_a_metrics_own_options_and_the_methods_change_its_key():
    base = _keys("method=[ig_black]", "eval=[mufidelity,deletion]")
    retuned = _keys("method=[ig_black]", "eval=[mufidelity,deletion]",
                    "eval.deletion.steps=20")
    method = _keys("method=[ig_black]", "eval=[mufidelity,deletion]", "attribution.steps=8")
    assert base.entries["ig_black"]["mufidelity"] == retuned.entries["ig_black"]["mufidelity"]
    assert base.entries["ig_black"]["deletion"] != retuned.entries["ig_black"]["deletion"]
    assert base.figures() != retuned.figures()  # the figures' curves follow deletion
    assert all(method.entries["ig_black"][e] != base.entries["ig_black"][e]
               for e in ("mufidelity", "deletion"))
    assert method.explanations != base.explanations

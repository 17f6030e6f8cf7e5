"""Attribution methods, created by name; all share one signature (as in Captum).

``method(model, x, target, *, output, internal_batch_size, image_ids, seed, **options)``
returns an :class:`~uni.methods.path.Attribution`. The names are the configs in
``conf/method/``: ``ig_<baseline>`` (IG from a static baseline), ``deeplift``,
``blur_ig``, ``guided_ig``, ``expected_gradients``, ``uni``, and what tests UNI
(docs/methods.md): ``uni_paper``, the gradient maps, ``agi``, ``big`` and the controls at
UNI's distance. Every path method takes ``idgi`` (:mod:`uni.methods.idgi`).

Each method's module registers it (:func:`~uni.methods._registry.register_method`) with
its metadata (``CATALOG``: display order and group, :mod:`uni.catalog`); this package
imports every module, so that adding a method is its module and its config.
:data:`METHODS` holds them in display order (tables and figures list methods in it).

Metrics that explain again (robustness, stability, noise floor) receive an
:class:`Explainer`: one method entry bound to a model, its options and the explained
output, which explains, gives the method's straight-line baselines and says what varies
between restarts, so that no metric looks a method up by name (as Captum's
``sensitivity_max`` takes an ``explanation_func``).
"""

from __future__ import annotations

from uni.discovery import import_submodules
from uni.methods._registry import (
    METHODS,
    OPTION_LIMITS,
    PATH_OPTIONS,
    RUNNER_ARGUMENTS,
    MethodSpec,
    check_method_options,
    get_method,
    get_spec,
    method_order,
    register_method,
)

import_submodules(__name__, __path__)  # each module registers what it defines

from uni.methods.explainer import (  # noqa: E402  (after every method registered)
    Explainer,
    attribute,
    explain,
    resolve_target,
    restart_seed,
)
from uni.methods.path import Attribution, integrated_gradients, riemann_rule  # noqa: E402
from uni.methods.trivial import TRIVIAL_METHODS  # noqa: E402
from uni.methods.unlearning import uni_baseline  # noqa: E402

__all__ = [
    "METHODS", "OPTION_LIMITS", "PATH_OPTIONS", "RUNNER_ARGUMENTS", "TRIVIAL_METHODS",
    "Attribution", "Explainer", "MethodSpec", "attribute", "check_method_options", "explain",
    "get_method", "get_spec", "method_order", "register_method",
    "integrated_gradients", "resolve_target", "restart_seed", "riemann_rule", "uni_baseline",
]

"""End-to-end cost of each experiment against its floor (`make bench`, `make bench-quick`).

For faithfulness, ROAD (the faithfulness methods scored by ``eval=road`` alone), the
sanity checks, robustness (one run per attack, with its noise floor), stability and
ImageNet-C, the experiment's config is composed as ``uni.run`` composes it, its first
images are explained and scored by the runner (:func:`uni.engine.loop.batch_rows`, records
to a scratch directory), timed per stage (explain per method, each metric, figures),
while :class:`uni.profiling.PassLog` logs every model call (the robustness attack's
smooth surrogate as its own model). The floor is the same calls replayed on those models
alone in the same run (:func:`uni.profiling.replay_seconds`): ``over_floor`` =
experiment seconds / floor seconds, what the harness adds to the model passes it must
make.

``robustness_topk_previous``: the top-k attack as it was before the cheaper attack of the
cost issue (central-difference HVP at fd_step 3e-4, surrogate with the method's own
steps), measured in the same run: ``topk_speedup`` = previous / current seconds.

``--methods [NAME ...]``: each method alone instead (faithfulness with only it, MuFidelity
only; no names: issue 31's methods), written to ``methods-cpu[-quick].json``.
``--only NAME ...``: these experiments' benchmarks only, printed and written to
``experiments-cpu[-quick]-only.json``, which keeps the other benchmarks' last measurement
under the same settings (each entry dated); the full file keeps the last complete run.
``--model NAME``: another model of ``conf/model`` (random weights where its weights need
a download: the same cost), written with ``-NAME`` in the file name.

    python benchmarks/experiments.py [--quick] [--images N] [--data DIR] [--methods ...]
                                     [--only road sanity ...] [--model resnet50]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from uni.config_dir import CONF_DIR
from uni.engine.job import prepare
from uni.engine.plan import calibrate, first_readable
from uni.profiling import replay_seconds

RESULTS = Path(__file__).resolve().parent / "results"
DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample-dev"
# the top-k attack before the cost issue: central differences, fd_step 3e-4, the surrogate
# integrated with the method's own steps
PREVIOUS_TOPK = ["eval.robustness.hvp=finite_difference", "eval.robustness.fd_step=0.0003",
                 "eval.robustness.surrogate_steps=null"]


def experiments() -> dict[str, list[str]]:
    """Benchmark name -> overrides of its experiment."""
    robustness = ["experiment=robustness"]
    return {
        "faithfulness": ["experiment=faithfulness"],
        "road": ["experiment=faithfulness", "eval=[road]"],
        "sanity": ["experiment=sanity"],
        **{f"robustness_{attack}": [*robustness, f"eval.robustness.attack={attack}"]
           for attack in ("random", "fgsm", "topk")},
        "robustness_topk_previous": [*robustness, "eval.robustness.attack=topk",
                                     *PREVIOUS_TOPK],
        "stability": ["experiment=stability"],
        "imagenet_c": ["experiment=imagenet_c", "data.severities=[3]",
                       "data.corruptions=[brightness]"],
    }


# issue 31's methods, each measured alone (faithfulness with only it, MuFidelity only):
# `--methods`
NEW_METHODS = ("uni_paper", "uni_idgi", "gradient", "abs_gradient", "gradient_x_input", "agi",
               "big", "adv_baseline", "random_ball", "ig_black_near", "ig_blur_near")


def method_benchmarks(names=NEW_METHODS) -> dict[str, list[str]]:
    """Benchmark name -> overrides: one method alone, scored by MuFidelity."""
    return {f"method_{m}": ["experiment=faithfulness", f"method=[{m}]", "eval=[mufidelity]"]
            for m in names}


def composed(overrides: list[str], profile: str, data: Path | None) -> dict:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"profile={profile}", *overrides])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["experiment"] = next(o.split("=", 1)[1] for o in overrides
                                  if o.startswith("experiment="))
    if data is not None and resolved["experiment"] == "imagenet_c":
        resolved["data"].update(base="folder", base_options={"root": str(data)})
    elif data is not None:
        resolved["data"].update(name="folder", root=str(data))
    resolved["figures"] = {"images": 0}
    resolved["attribution_store"] = "off"  # every run explains: the cost measured
    return resolved


def bench_experiment(cfg: dict, images: int) -> dict:
    """Seconds per image (total and per stage) of ``cfg``'s first ``images`` readable
    images, its model passes and its floor (the same passes, model alone)."""
    with tempfile.TemporaryDirectory() as scratch:
        ready = prepare({**cfg, "data": {**cfg["data"], "limit": images}}, scratch)
        samples = first_readable(ready.dataset, images)
        job = ready.job
        seconds, log = calibrate(job, samples)
    floor = replay_seconds(log)
    n = len(samples)
    return {
        "images": n,
        "seconds_per_image": seconds / n,
        "floor_seconds_per_image": floor / n,
        "over_floor": seconds / floor,
        "forward_rows_per_image": log.rows(grad=False) / n,
        "gradient_rows_per_image": log.rows(grad=True) / n,
        "stages_per_image": {k: v / n for k, v in sorted(job.clock.seconds.items())},
        "date": datetime.date.today().isoformat(),
    }


def run(quick: bool, images: int | None = None, data: Path | None = None,
        extra: tuple[str, ...] = (), methods: list[str] | None = None,
        only: list[str] | None = None) -> dict:
    """Every experiment's cost against its floor; ``quick``: profile=quick on one image;
    ``extra``: overrides added to every experiment's (e.g. batch sizes, fewer steps);
    ``methods``: instead, each of these methods alone (:func:`method_benchmarks`);
    ``only``: these of :func:`experiments` only."""
    images = images or (1 if quick else 2)
    data = data if data is not None else (DEV if DEV.is_dir() else None)
    profile = "quick" if quick else "dev"
    results = {"profile": profile, "data": str(data or "embedded"),
               "torch_threads": torch.get_num_threads()}
    benchmarks = method_benchmarks(methods) if methods else experiments()
    if only:
        unknown = sorted(set(only) - set(benchmarks))
        if unknown:
            raise SystemExit(f"--only: {unknown} not among {sorted(benchmarks)}")
        benchmarks = {name: benchmarks[name] for name in only}
    for name, overrides in benchmarks.items():
        results[name] = bench_experiment(composed([*overrides, *extra], profile, data), images)
        print(f"{name:26s} {results[name]['seconds_per_image']:8.1f} s/image "
              f"{results[name]['over_floor']:5.2f}x floor", flush=True)
    if methods or only:
        return results
    previous, current = results["robustness_topk_previous"], results["robustness_topk"]
    results["topk_speedup"] = previous["seconds_per_image"] / current["seconds_per_image"]
    return results


def model_overrides(name: str) -> tuple[str, ...]:
    """``model=name``, with random weights where its weights would need a download (the
    same cost as real ones; this machine reaches no model hub)."""
    from uni.models import OFFLINE_MODELS, weights_unavailable

    overrides = (f"model={name}",)
    model = composed(["experiment=faithfulness", *overrides], "quick", None)["model"]
    if (model.get("pretrained") and model["name"] not in OFFLINE_MODELS
            and weights_unavailable(model["name"])):
        overrides += ("model.pretrained=false",)
    return overrides


def summary(results: dict) -> dict:
    """The quick JSON line's keys."""
    robustness = [results[f"robustness_{a}"] for a in ("random", "fgsm", "topk")]
    return {
        "faithfulness_over_floor": results["faithfulness"]["over_floor"],
        "road_over_floor": results["road"]["over_floor"],
        "sanity_over_floor": results["sanity"]["over_floor"],
        "robustness_over_floor": sum(r["seconds_per_image"] for r in robustness)
        / sum(r["floor_seconds_per_image"] for r in robustness),
        "stability_over_floor": results["stability"]["over_floor"],
        "imagenet_c_over_floor": results["imagenet_c"]["over_floor"],
        "robustness_topk_speedup": results["topk_speedup"],
    }


def merged(path: Path, results: dict) -> dict:
    """A partial run's file keeps the benchmarks it did not measure from the file's last
    run under the same settings (profile, data, threads); each entry has its own date."""
    if path.is_file():
        kept = json.loads(path.read_text())
        if all(kept.get(key) == results[key] for key in ("profile", "data", "torch_threads")):
            kept.pop("summary", None)
            return {**kept, **results}
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="profile=quick, one image")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--data", type=Path, default=None, help="an image folder")
    parser.add_argument("--methods", nargs="*", default=None, metavar="METHOD",
                        help="each method alone instead (no names: issue 31's methods)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="these experiment benchmarks only (e.g. road sanity)")
    parser.add_argument("--model", default=None,
                        help="a model of conf/model (random weights unless offline)")
    args = parser.parse_args(argv)
    methods = None if args.methods is None else (args.methods or list(NEW_METHODS))
    try:
        extra = model_overrides(args.model) if args.model else ()
    except Exception as err:  # Hydra's composition error: an unknown conf/model name
        parser.error(f"--model {args.model}: {str(err).splitlines()[0]}")
    results = run(args.quick, args.images, args.data, extra=extra, methods=methods,
                  only=args.only)
    partial = methods or args.only
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{'methods' if methods else 'experiments'}-cpu"
                      f"{'-quick' if args.quick else ''}{'-only' if args.only else ''}"
                      f"{f'-{args.model}' if args.model else ''}.json")
    if partial:
        results = merged(path, results)
    results["summary"] = ({n: r["over_floor"] for n, r in results.items()
                           if isinstance(r, dict) and "over_floor" in r}
                          if partial else summary(results))
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"]))
    return results


if __name__ == "__main__":
    main()

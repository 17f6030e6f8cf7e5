# uni-bench: `make reproduce` and `make test` are the only commands a user needs;
# every target that needs the environment builds it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
REPRODUCE_ARGS ?=

.PHONY: setup test reproduce ablation ablation-model baseline-ablation dev-results topk-calibration bench bench-quick device-dry lint docs clean

setup: $(STAMP)

# re-install when the dependencies change; idempotent otherwise
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# every experiment of the paper (one run directory each), then the tables, figures and
# REPORT.md. PROFILE=paper for the full protocol; DATA=<image folder> instead of the
# embedded photos (ImageNet-C is then generated from that folder).
PROFILE ?= quick
# the committed default run in results/; other profiles or data in their own folder
RESULTS ?= $(if $(DATA)$(filter-out quick,$(PROFILE)),results/$(PROFILE),results)
# MODEL=<conf/model name>: the same experiments on another model, in <experiment>-<model>/
# beside the default model's runs (the report puts every model in one MuFidelity table)
MODEL ?=
# the experiments share one attribution store: each image x method is explained once
SWEEP = $(PY) -m uni.run --multirun profile=$(PROFILE) hydra.sweep.dir=$(RESULTS) \
	attribution_store=$(RESULTS)/attributions \
	'hydra.sweep.subdir=$${hydra:runtime.choices.experiment}$(if $(MODEL),-$(MODEL))' \
	$(if $(MODEL),model=$(MODEL)) $(REPRODUCE_ARGS)
reproduce: $(STAMP)
	$(SWEEP) experiment=faithfulness,robustness,stability $(if $(DATA),data=folder data.root=$(DATA))
	$(SWEEP) experiment=imagenet_c $(if $(DATA),data.base=folder +data.base_options.root=$(DATA))
	$(PY) -m uni.run report $(RESULTS)

# UNI's ablation on the development split (conf/experiment/uni_ablation.yaml): one run per
# setting under $(TUNING_DIR)/uni_ablation/; resumable; ABLATION_ARGS='data.shard=0
# data.num_shards=2' (and =1 in a second process) splits the images between processes.
# UNI_DEV_DATA: the development split's folder (conf/paths/default.yaml; from the environment
# if set there); passed as data.root, which the records' keys hold as given
UNI_DEV_DATA ?= ../shared/data/imagenet-sample-dev
# where the tuning runs go (the regeneration: TUNING_DIR=results/dev-next)
TUNING_DIR ?= results/dev
ABLATION = $(PY) -m uni.run --multirun experiment=uni_ablation data.root=$(UNI_DEV_DATA) $(ABLATION_ARGS)
LINF_EPS = 0.00196078,0.00392157,0.00784314,0.01568627,0.03137255,0.0627451,0.1254902,0.25098039
# L2 radii matched to the L-inf ones: eps_2 = eps_inf sqrt(3 * 224 * 224) / 2, the
# usual ImageNet pairing (L-inf 4/255 ~ L2 3.0, Engstrom et al.'s robustness library)
L2_EPS = 0.38039,0.76078,1.52157,3.04314,6.08627,12.17255,24.34510,48.69020
LITE0_ABLATION = $(ABLATION) hydra.sweep.dir=$(TUNING_DIR)/uni_ablation
ablation: $(STAMP)
	$(LITE0_ABLATION) method.uni.norm=linf method.uni.eps=$(LINF_EPS)
	$(LITE0_ABLATION) method.uni.norm=l2 method.uni.eps=$(L2_EPS)
	$(LITE0_ABLATION) method.uni.pgd_steps=5,10,50
	$(LITE0_ABLATION) method.uni.unlearn_step=fixed method.uni.eta=0.01
	$(LITE0_ABLATION) method.uni.unlearn_step=fixed method.uni.eta=0.01 method.uni.unlearn_steps=10 \
		method.uni.unlearn_until=0.1
	$(LITE0_ABLATION) method.uni.pgd_update=sign method.uni.pgd_schedule=constant,cosine
	$(LITE0_ABLATION) method.uni.pgd_update=adam method.uni.pgd_schedule=cosine
	$(LITE0_ABLATION) method.uni.unlearn_step=fixed method.uni.eta=0.01 method.uni.pgd_update=sign
	$(LITE0_ABLATION) method.uni.kl_direction=reverse
	# uni_paper's cell (Algorithm 1 as written, conf/method/uni_paper.yaml), both KL
	# directions (the paper's text leaves the order open); same images and protocol
	$(LITE0_ABLATION) method.uni.unlearn_step=fixed method.uni.eta=0.01 method.uni.norm=linf \
		method.uni.eps=0.01568627 method.uni.pgd_update=sign method.uni.pgd_schedule=constant \
		+method.uni.pgd_return=last method.uni.kl_direction=forward,reverse

# UNI's eps x norm sweep per model (make ablation-model MODEL=efficientnet_lite1) on the
# tuning subset, under $(TUNING_DIR)/tuning/$(MODEL)/; then `python -m uni.analysis.ablation
# select $(TUNING_DIR)/tuning/$(MODEL)` picks that model's eps (docs/experimental-design.md)
MODEL_ABLATION = $(ABLATION) model=$(MODEL) hydra.sweep.dir=$(TUNING_DIR)/tuning/$(MODEL)/uni_ablation
ablation-model: $(STAMP)
	test -n "$(MODEL)" || { echo "usage: make ablation-model MODEL=efficientnet_lite1"; exit 2; }
	$(MODEL_ABLATION) method.uni.norm=linf method.uni.eps=$(LINF_EPS)
	$(MODEL_ABLATION) method.uni.norm=l2 method.uni.eps=$(L2_EPS)

# the baselines' equal tuning budget (conf/experiment/baseline_ablation.yaml): the same
# images, metrics and rule as UNI's ablation; then `python -m uni.analysis.baseline_ablation select
# $(TUNING_DIR)`; MODEL=... and BASELINE_DIR=$(TUNING_DIR)/tuning/$(MODEL) for another model
BASELINE_DIR ?= $(TUNING_DIR)
BASELINES = $(PY) -m uni.run --multirun experiment=baseline_ablation data.root=$(UNI_DEV_DATA) $(if $(MODEL),model=$(MODEL)) \
	hydra.sweep.dir=$(BASELINE_DIR)/baseline_ablation $(ABLATION_ARGS)
baseline-ablation: $(STAMP)
	$(BASELINES) 'method=[ig_blur]' method.ig_blur.sigma=1.0,2.0,5.0,10.0,20.0,40.0
	$(BASELINES) 'method=[ig_uniform]' method.ig_uniform.samples=1,4,16
	$(BASELINES) 'method=[ig_gaussian]' method.ig_gaussian.sigma=0.05,0.1,0.2,0.4,0.8 \
		method.ig_gaussian.samples=1,4,16
	$(BASELINES) 'method=[expected_gradients]' method.expected_gradients.samples=1,4,8,16

# the development results (docs/experimental-design.md §6), after the tuning above into
# the same directory: every evaluation run of the split's evaluation subset in turn, each
# resumable; DEV_ARGS='data.shard=0 data.num_shards=2' (and =1 in a second process) splits
# every run's images; then `python -m uni.run report $(DEV_DIR)` once both are done. Lite1
# and Lite2 add UNI at the radius their own sweep selected (ablation overrides)
DEV_DIR ?= results/dev-next
DEV_ARGS ?=
DEV_OPTIONS = profile=dev attribution_store=$(DEV_DIR)/attributions $(DEV_ARGS)
DEV = $(PY) -m uni.run $(DEV_OPTIONS)
DEV_FOLDER = data=folder data.root=$(UNI_DEV_DATA)
# the paper's methods; the controls and rivals; the trivial maps; the tuned baselines
DEV_PAPER = ig_black,ig_blur,ig_uniform,ig_gaussian,deeplift,uni,blur_ig,guided_ig,expected_gradients
DEV_RIVALS = uni_paper,uni_idgi,gradient,abs_gradient,gradient_x_input,agi,big,adv_baseline,random_ball,ig_black_near,ig_blur_near
DEV_TRIVIAL = trivial_constant,trivial_noise,trivial_edges,trivial_intensity,trivial_centre
DEV_TUNED = ig_blur_tuned,ig_uniform_tuned,ig_gaussian_tuned,expected_gradients_tuned
# faithfulness on another model, with UNI also at the radius that model's sweep selected
DEV_OWN_EPS = OWN="$$($(PY) -m uni.analysis.ablation overrides $(DEV_DIR)/tuning/$(1) uni_own_eps)" && \
	$(DEV) experiment=faithfulness $(DEV_FOLDER) model=$(1) data.limit=100 \
	'method=[$(DEV_PAPER),$(DEV_TUNED)]' +method@method.uni_own_eps=uni +method.uni_own_eps.kind=uni \
	$$OWN hydra.run.dir=$(DEV_DIR)/faithfulness-$(1)
dev-results: $(STAMP)
	$(DEV) experiment=faithfulness $(DEV_FOLDER) hydra.run.dir=$(DEV_DIR)/faithfulness \
		'method=[$(DEV_PAPER),$(DEV_RIVALS),$(DEV_TRIVIAL),$(DEV_TUNED)]'
	$(call DEV_OWN_EPS,efficientnet_lite1)
	$(call DEV_OWN_EPS,efficientnet_lite2)
	$(PY) -m uni.run --multirun $(DEV_OPTIONS) experiment=faithfulness $(DEV_FOLDER) 'method=[$(DEV_PAPER)]' \
		data.limit=100 seed=1,2 hydra.sweep.dir=$(DEV_DIR)/seeds \
		'hydra.sweep.subdir=faithfulness-seed$${seed}'
	$(DEV) experiment=sanity $(DEV_FOLDER) hydra.run.dir=$(DEV_DIR)/sanity
	$(DEV) experiment=protocol_sensitivity $(DEV_FOLDER) data.limit=60 \
		hydra.run.dir=$(DEV_DIR)/protocol_sensitivity
	$(DEV) experiment=stability $(DEV_FOLDER) hydra.run.dir=$(DEV_DIR)/stability
	$(DEV) experiment=imagenet_c data.base=folder +data.base_options.root=$(UNI_DEV_DATA) \
		hydra.run.dir=$(DEV_DIR)/imagenet_c
	$(DEV) experiment=robustness $(DEV_FOLDER) hydra.run.dir=$(DEV_DIR)/robustness
	$(DEV) experiment=robustness_sweep $(DEV_FOLDER) data.limit=30 \
		hydra.run.dir=$(DEV_DIR)/robustness-sweep

# the top-k attack's surrogate steps (conf/experiment/topk_calibration.yaml) on the tuning
# images, resumable; then `benchmarks/topk_attack.py select $(TUNING_DIR)/topk_calibration`
topk-calibration: $(STAMP)
	$(PY) -m uni.run --multirun experiment=topk_calibration data.root=$(UNI_DEV_DATA) \
		eval.robustness.surrogate_steps=4,8,16,32 hydra.sweep.dir=$(TUNING_DIR)/topk_calibration \
		$(ABLATION_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

# the documentation site into site/ (mkdocs.yml); --strict: a broken link, anchor or
# API reference fails the build
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site
# benchmarks/device.sh (the GPU run, docs/performance.md) on tiny CPU settings: every
# section runs; the JSON goes to build/device/ (CI runs this after the tests)
device-dry: $(STAMP)
	PYTHON=$(PY) bash benchmarks/device.sh --dry

lint: $(STAMP)
	$(VENV)/bin/ruff check uni tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache site

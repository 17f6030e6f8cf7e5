# uni-bench: `make reproduce` and `make test` are the only commands a user needs;
# every target that needs the environment builds it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
REPRODUCE_ARGS ?=

.PHONY: setup test reproduce bench bench-quick lint clean

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
SWEEP = $(PY) -m uni.run --multirun profile=$(PROFILE) hydra.sweep.dir=$(RESULTS) \
	'hydra.sweep.subdir=$${hydra:runtime.choices.experiment}$(if $(MODEL),-$(MODEL))' \
	$(if $(MODEL),model=$(MODEL)) $(REPRODUCE_ARGS)
reproduce: $(STAMP)
	$(SWEEP) experiment=faithfulness,robustness,stability $(if $(DATA),data=folder data.root=$(DATA))
	$(SWEEP) experiment=imagenet_c $(if $(DATA),data.base=folder +data.base_options.root=$(DATA))
	$(PY) -m uni.run report $(RESULTS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check uni tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache

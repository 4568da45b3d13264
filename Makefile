# The README's two commands: `make report` (the main job) and `make test` (CI).
# Both create .venv when it is missing and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fmlp-installed
QUICK ?=
RESULTS ?= $(if $(QUICK),results-quick,results)

.PHONY: test report docs bench bench-optimizers venv lint typecheck data pytest clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[analyses,dev,cluster,fast]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# The tests that need the real MNIST skip themselves when it cannot be fetched; under
# CI (the environment variable CI set) a failed fetch fails instead, so CI always tests
# on the real data. Under CI, as root, Debian's Fashion-MNIST is installed too (its tests
# skip themselves without it).
data: $(STAMP)
	@$(PY) -m fmlp.data fetch mnist --no-progress || { \
	  if [ -n "$$CI" ]; then echo "error: MNIST could not be fetched, and CI needs it" >&2; exit 1; fi; \
	  echo "warning: MNIST could not be fetched; the tests that need it will be skipped" >&2; }
	@if [ -n "$$CI" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    dataset-fashion-mnist) >/dev/null 2>&1 \
	  || echo "warning: Fashion-MNIST could not be installed; its tests will be skipped" >&2; fi

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck data pytest

report: $(STAMP)
	$(PY) -m fmlp.data fetch mnist
	$(PY) -m analyses.main --out $(RESULTS) $(if $(QUICK),--quick,)

# The HTML API reference of fmlp, from its docstrings and type hints: build/api/index.html.
# pdoc, in the docs extra, comes with the dev extra (the reference has a test), so the
# venv already has it. A module that cannot be imported, or a warning, fails the build.
docs: $(STAMP)
	$(PY) -m analyses.apidoc --out build/api

# JAX and optax are only needed by the benchmarks: the bench extra is installed on demand.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[analyses,dev,cluster,fast,bench]'
	$(PY) -m analyses.benchmark --out $(RESULTS) --both

# Each optimizer's step against in-place numpy, torch, JAX+optax and the GEMM-only loop.
bench-optimizers: $(STAMP)
	$(PY) -m pip install --quiet -e '.[analyses,dev,cluster,fast,bench]'
	$(PY) -m analyses.benchmark --per-optimizer --out $(RESULTS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache

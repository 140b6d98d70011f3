# Set-up and entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv, install torch==2.13.0 when the venv has no torch (a CPU build here,
# never a multi-GB CUDA download), then the package (`make demo`) and its test tools
# (`make test`, `make setup-dev`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# One OpenMP thread per process: pytest-xdist runs two workers on two cores.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup setup-dev demo test lint clean

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/flowless demo --out runs/demo

test: setup-dev
	$(TEST_ENV) $(VENV)/bin/pytest -q -n 2 --dist loadfile
	$(VENV)/bin/ruff check src tests benchmarks

lint: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

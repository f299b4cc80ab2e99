# Two commands: `make demo` and `make test`. Both create .venv on first use and reuse it after.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Local copies of the routing data (read-only); real users set MIXLLM_DATA_DIR or let mixllm download.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export MIXLLM_DATA_DIR ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test lint typecheck pytest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch (a plain `torch` would pull several GB of CUDA wheels).
	$(BIN)/python -m pip install --quiet "torch==2.13.*"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

# One BLAS/OpenMP thread unless set: the first run distils the static embedding model, whose
# threads wait on each other on a busy 2-core machine (2-4 min there, ~30 s single-threaded).
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/mixllm demo --report reports/demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" && exit 1; exit $$rc; }

test: lint typecheck pytest

clean:
	rm -rf $(VENV) reports .mypy_cache .ruff_cache .pytest_cache

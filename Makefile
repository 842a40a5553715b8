# Two commands do all the set-up on a fresh machine (Python 3.11 needed):
#   make serve   # virtualenv + runtime deps, then the service on http://127.0.0.1:8000
#   make test    # virtualenv + all deps (torchvision, test tools, Chromium, wrk), then the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# A CPU build is enough to serve; torchvision 0.29 (training, tests) needs torch 2.14.1.
TORCH_SERVE ?= torch==2.13.0
TORCH_DEV ?= torch==2.14.1 torchvision==0.29.1
# MNIST: use a local copy when there is one, else torchvision downloads it into data/.
export GCNN_DATA_DIR ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)

.PHONY: serve test lint bench loadtest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH_SERVE)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_DEV)
	$(BIN)/pip install --quiet -e ".[train,dev,bench]"
	bash scripts/install_system_deps.sh
	touch $@

serve: $(VENV)/.serve
	$(BIN)/python -m app.guard.server --host $(HOST) --port $(PORT)

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.dev
	$(BIN)/python -m bench.speed

loadtest: $(VENV)/.dev
	$(BIN)/python -m bench.loadtest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

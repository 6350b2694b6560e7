# Run `make help` for the list of targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build installed first; on a CUDA machine pick its wheel index, e.g.
#   make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-all clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project (editable, dev extra)

test: $(STAMP) ## Run the fast test suite (CPU, minutes)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) ## Run every test, slow ones included
	$(PY) -m pytest -q

clean: ## Remove the environment, caches and run outputs (keeps data/ and results/)
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis outputs multirun lightning_logs wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

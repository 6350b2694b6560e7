# Run `make help` for the list of targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build installed first; on a CUDA machine pick its wheel index, e.g.
#   make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

DATA ?= data
RESULTS ?= results
# Paper-scale reproduction: `make lra-all TRAINER=gpu LRA_TASKS="listops text" SEEDS=0,1,2`.
TRAINER ?= gpu
LRA_TASKS ?= listops text retrieval image pathfinder
BACKENDS ?= softmax,linear,performer,luna
SEEDS ?= 0,1,2
# lra-all keeps checkpoints/last.ckpt this often and resumes unfinished runs from it.
CHECKPOINT_EVERY ?= 500
# Extra overrides for every training run of lra-mini / lra-all, e.g. TRAIN_ARGS="trainer.max_steps=100".
TRAIN_ARGS ?=
# Who runs the sweep's jobs: basic (one after another, here), joblib (in parallel, here; one device
# each), slurm (one SLURM job per run, configs/hydra/launcher/slurm.yaml); options in LAUNCHER_ARGS, e.g.
#   make lra-all LAUNCHER=slurm LAUNCHER_ARGS="hydra.launcher.partition=gpu hydra.launcher.account=me"
LAUNCHER ?= basic
LAUNCHER_ARGS ?=
SWEEP_ARGS = hydra/launcher=$(LAUNCHER) $(LAUNCHER_ARGS) $(TRAIN_ARGS)
comma := ,
empty :=
space := $(empty) $(empty)
# The offline CPU quick start: small generated sets, the `cpu` budget.
MINI_DATA ?= $(DATA)/mini
MINI_EXPRESSIONS ?= 10000
MINI_IMAGES ?= 20000
# Markers written after a complete generation (an interrupted one is resumed by the generator).
MINI_LISTOPS := $(MINI_DATA)/.listops-generated
MINI_PATHFINDER := $(MINI_DATA)/.pathfinder-generated

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint bench clean lra-mini lra-all table convert-demo

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev,convert]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project (editable, dev and convert extras)

test: $(STAMP) ## Run the fast test suite (CPU, minutes)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) ## Run every test, slow ones included
	$(PY) -m pytest -q

lint: $(STAMP) ## Check style with ruff (lint and formatting)
	$(PY) -m ruff check lra luna tests
	$(PY) -m ruff format --check lra luna tests

bench: $(STAMP) ## Speed and memory of every backend, attention alone and the Text model (results/efficiency.*)
	$(PY) -m lra.bench --results-dir $(RESULTS)

$(MINI_LISTOPS): | $(STAMP)
	$(PY) -m lra.prepare listops --generate --data-dir $(MINI_DATA) --seed 0 \
		--num-train $(MINI_EXPRESSIONS) --num-val 500 --num-test 500 --min-length 20 --max-length 100
	@touch $@

$(MINI_PATHFINDER): | $(STAMP)
	$(PY) -m lra.prepare pathfinder --generate --data-dir $(MINI_DATA) --seed 0 \
		--num-images $(MINI_IMAGES) --contour-length 6
	@touch $@

lra-mini: $(STAMP) $(MINI_LISTOPS) $(MINI_PATHFINDER) ## Offline CPU run of all backends on generated ListOps + Pathfinder, then the table
	$(PY) -m lra.train -m task=listops attention=$(BACKENDS) budget=cpu trainer=cpu \
		data_dir=$(MINI_DATA) results_dir=$(RESULTS) $(SWEEP_ARGS)
	$(PY) -m lra.train -m task=pathfinder task.datamodule.contour_length=6 attention=$(BACKENDS) \
		budget=cpu trainer=cpu data_dir=$(MINI_DATA) results_dir=$(RESULTS) \
		$(SWEEP_ARGS)
	$(PY) -m lra.results results_dir=$(RESULTS)

# One sweep over every task, so a cluster launcher receives all of its jobs at once.
lra-all: $(STAMP) ## Paper-scale reproduction (GPU): prepare data, every task x backend x seed, tables; resumes or skips
	$(PY) -m lra.prepare all --data-dir $(DATA)
	$(PY) -m lra.train -m task=$(subst $(space),$(comma),$(strip $(LRA_TASKS))) attention=$(BACKENDS) \
		seed=$(SEEDS) budget=paper trainer=$(TRAINER) data_dir=$(DATA) results_dir=$(RESULTS) \
		skip_finished=true resume=auto checkpoint_every_steps=$(CHECKPOINT_EVERY) $(SWEEP_ARGS)
	$(PY) -m lra.results results_dir=$(RESULTS)

table: $(STAMP) ## Regenerate tables and plots under results/ from the run records
	$(PY) -m lra.results results_dir=$(RESULTS)

convert-demo: $(STAMP) ## Offline CPU: all-MiniLM-L6-v2 converted to linear, Performer and LUNA (results/conversion.md, ~3 min)
	HF_HUB_OFFLINE=1 $(PY) -m lra.convert_demo results_dir=$(RESULTS)

clean: ## Remove the environment, caches and run outputs (keeps data/ and results/)
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis outputs multirun lightning_logs wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

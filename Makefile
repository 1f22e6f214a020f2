# cardio: two commands on a fresh machine, `make train` and `make test`.
# `make train` installs what training needs (.[train]); `make test`, `lint`, `docs`, `lock`, `bench` add the
# development tools (.[dev]: SB3, cpprb, pytest, mypy, mkdocs...). Versions come from requirements.lock.
#
# Words such as `seed=3 agent=dqn runner.total_steps=2e4` reach make as variable assignments
# ($(MAKEOVERRIDES)); they are forwarded to Hydra as overrides. Make's own knobs below are filtered out.
PYTHON ?= python3
VENV ?= .venv
# Pin overridable by users, e.g. `make train TORCH="torch==2.13.0+cu128 --index-url ..."`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.cardio-installed
DEV_STAMP := $(VENV)/.cardio-dev-installed
LOCK := requirements.lock
OWN_VARS := PYTHON=% VENV=% TORCH=% ARGS=% PYTEST_ARGS=% TEST_JOBS=%
HYDRA_ARGS := $(filter-out $(OWN_VARS),$(MAKEOVERRIDES)) $(ARGS)

.PHONY: install install-dev train multirun sweep evaluate plot dataset test test-nojax test-slow test-cluster lint format docs lock wheel bench clean

install: $(STAMP)

install-dev: $(DEV_STAMP)

# torch first (the pin above, CPU unless overridden), then cardio with every other package at its locked version
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[train]"
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[dev]"
	@touch $(DEV_STAMP)

train: $(STAMP)
	$(BIN)/python scripts/train.py $(HYDRA_ARGS)

# `make multirun seed=0,1,2`: make swallows `-m`, so Hydra's multirun has its own target.
multirun: $(STAMP)
	$(BIN)/python scripts/train.py -m $(HYDRA_ARGS)

sweep: $(STAMP)
	$(BIN)/python scripts/sweep.py $(HYDRA_ARGS)

evaluate: $(STAMP)
	$(BIN)/python scripts/evaluate.py $(HYDRA_ARGS)

plot: $(STAMP)
	$(BIN)/python scripts/plot.py $(HYDRA_ARGS)

# `make dataset recipe=cartpole_mixed seed=0`: a Minari dataset from trained runs (configs/dataset/, docs/offline.md).
dataset: $(STAMP)
	$(BIN)/python scripts/record.py $(HYDRA_ARGS)

# The fast suite in parallel (pytest-xdist): one worker per core, at most TEST_JOBS. `--dist loadfile` keeps each
# test file in one worker, so a module's shared fixtures (one sweep, one multirun) are made once, in one process.
# Serial: `make test TEST_JOBS=0`.
TEST_JOBS ?= 4
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n auto --maxprocesses $(TEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

# The fast suite as a user without the jax extra sees it: .ci/nojax/sitecustomize.py marks jax, jaxlib and optax
# absent at every interpreter's start-up (the suite's subprocesses inherit PYTHONPATH), so JAX tests skip and
# nothing else may need JAX.
test-nojax: $(DEV_STAMP)
	PYTHONPATH=$(CURDIR)/.ci/nojax $(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n auto --maxprocesses $(TEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# The cluster tests (tests/test_slurm.py) on the SLURM that SLURM_CONF names, else .ci/slurm.sh's; they skip with
# one line where none answers. CI: `CARDIO_REQUIRE_SLURM=1 .ci/slurm.sh run make test-cluster` (a failure there).
test-cluster: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slurm tests/test_slurm.py $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check cardio scripts tests bench examples hydra_plugins
	$(BIN)/ruff format --check cardio scripts tests bench examples hydra_plugins
	$(BIN)/ruff format --check docs README.md  # the Python blocks of the docs
	$(BIN)/mypy cardio scripts hydra_plugins
	$(BIN)/lint-imports  # the layers of cardio/ (pyproject.toml [tool.importlinter], docs/architecture.md)

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix cardio scripts tests bench examples hydra_plugins
	$(BIN)/ruff format cardio scripts tests bench examples hydra_plugins

bench: $(DEV_STAMP)
	$(BIN)/python bench/dqn_cartpole.py

# the docs site (docs/ + docstrings) into site/, warnings as errors
docs: $(DEV_STAMP)
	$(BIN)/mkdocs build --strict

# refresh requirements.lock after changing pyproject.toml's dependencies (tests/test_lock.py checks they match)
lock: $(DEV_STAMP)
	$(BIN)/python scripts/lock.py

# build the sdist and wheel, check them, install the wheel in a fresh venv and train from outside the repo
wheel: $(DEV_STAMP)
	PYTHON=$(BIN)/python TORCH="$(TORCH)" .ci/wheel.sh

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache site dist build

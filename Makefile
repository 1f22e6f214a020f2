# cardio: two commands on a fresh machine, `make train` and `make test`.
#
# Words such as `seed=3 agent=dqn runner.total_steps=2e4` reach make as variable assignments
# ($(MAKEOVERRIDES)); they are forwarded to Hydra as overrides. Make's own knobs below are filtered out.
PYTHON ?= python3
VENV ?= .venv
# Pin overridable by users, e.g. `make train TORCH="torch==2.13.0+cu128 --index-url ..."`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.cardio-installed
OWN_VARS := PYTHON=% VENV=% TORCH=% ARGS=% PYTEST_ARGS=%
HYDRA_ARGS := $(filter-out $(OWN_VARS),$(MAKEOVERRIDES)) $(ARGS)

.PHONY: install train multirun sweep evaluate plot dataset test test-slow lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

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

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cardio scripts tests bench
	$(BIN)/ruff format --check cardio scripts tests bench
	$(BIN)/mypy cardio scripts

format: $(STAMP)
	$(BIN)/ruff check --fix cardio scripts tests bench
	$(BIN)/ruff format cardio scripts tests bench

bench: $(STAMP)
	$(BIN)/python bench/dqn_cartpole.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache

# fusionlab: two commands, `make train` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: install train test test-fast bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first (the CPU build served for this exact version), so that the project install
# does not pull several GB of CUDA wheels; then the project in editable mode with dev extras.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python train.py $(ARGS)

test: install
	WANDB_MODE=offline $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf logs outputs multirun wandb .pytest_cache
